"""Response models: what each endpoint answers, so /docs describes it exactly."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from typing_extensions import Self

Status = Literal["OK", "STALE", "SILENT"]


class Problem(BaseModel):
    detail: str


class IngestResult(BaseModel):
    accepted: int = Field(description="events stored")
    duplicates: int = Field(description="events dropped because their event_id repeated")
    files: int


class PipelineSummary(BaseModel):
    pipeline_id: str


class FeatureInfo(BaseModel):
    name: str
    entity_values: bool = Field(
        description="whether ENTITY events carry it (per-entity values, lineage and percentiles); "
        "false for features with AGGREGATE statistics only (PERSONAL, SENSITIVE, aggregate-only)"
    )


class PipelineFeatures(BaseModel):
    pipeline_id: str
    features: list[FeatureInfo]


class OperatorHealth(BaseModel):
    operator_id: str
    operator_type: str
    status: Status
    last_flush: int = Field(description="processing time of the last AGGREGATE event, epoch ms")
    seconds_since_flush: float
    watermark: int | None
    watermark_lag_seconds: float | None = Field(
        description="the latest watermark's lag: the time of the flush that reported it "
        "minus the watermark"
    )


class Thresholds(BaseModel):
    stale_after_seconds: float
    silent_after_seconds: float


class PipelineHealth(BaseModel):
    pipeline_id: str
    flowing: bool = Field(description="every operator is OK")
    at: int = Field(description="the moment this health is of: now, or the `at` asked for")
    thresholds: Thresholds
    operators: list[OperatorHealth]


class OperatorThroughput(BaseModel):
    operator_id: str
    operator_type: str
    subtasks: int
    input_per_minute: float
    output_per_minute: float
    filter_ratio: float | None = Field(description="output / input over the window")
    late_rate: float | None = Field(
        description="late / input over the window; null where the operator never sees late "
        "records (Flink windows: Flink drops them before the window function)"
    )
    last_flush: int


class PipelineOperators(BaseModel):
    pipeline_id: str
    window: str
    operators: list[OperatorThroughput]


class SubtaskFlow(BaseModel):
    subtask_index: int
    last_flush: int = Field(description="its last AGGREGATE event in the window, epoch ms")
    seconds_since_flush: float = Field(description="from its last flush to the window's end")
    behind_seconds: float = Field(
        description="the operator's newest flush (of any subtask) minus this subtask's last"
    )
    watermark: int | None = Field(description="its latest watermark in the window, epoch ms")
    watermark_lag_seconds: float | None = Field(
        description="the flush that carried that watermark minus the watermark"
    )
    input_count: int
    output_count: int
    late_count: int | None = Field(description="null where the operator does not count them")
    flushes: int
    input_share: float | None = Field(
        description="its share of the operator's input over the window"
    )


class OperatorSubtasks(BaseModel):
    operator_id: str
    operator_type: str
    subtasks: int = Field(description="subtasks that flushed in the window")
    stalled: list[int] = Field(
        description="subtasks whose last flush is at least the stale threshold older than "
        "the operator's newest: the rest of the operator moved on without them"
    )
    input_skew: float | None = Field(
        description="the busiest subtask's input over the mean of the subtasks': 1 is even, "
        "the number of subtasks is all on one; null with one subtask or no input"
    )
    busiest_subtask: int | None
    watermark_spread_seconds: float | None = Field(
        description="the newest minus the oldest of the subtasks' latest watermarks; null "
        "with fewer than two subtasks that carry one"
    )
    slowest_watermark_subtask: int | None = Field(
        description="the subtask with the oldest watermark: event time downstream can go "
        "no further than it"
    )
    detail: list[SubtaskFlow]


class PipelineSubtasks(BaseModel):
    pipeline_id: str
    window: str
    at: int = Field(description="the window's end: now, or the `until` asked for")
    stale_after_seconds: float = Field(description="FARO_STALE_AFTER_S: how far behind is stalled")
    operators: list[OperatorSubtasks]


class FunnelStage(BaseModel):
    operator_id: str
    operator_type: str
    input_count: int = Field(description="records in over the window, summed over subtasks")
    output_count: int = Field(description="records out over the window, summed over subtasks")
    pass_rate: float | None = Field(description="output / input of this stage")
    handoff_rate: float | None = Field(
        description="this stage's input / the previous stage's output; below 1, records "
        "were lost between the two (or an operator faro does not trace filtered them); "
        "null for the first stage"
    )
    survival: float | None = Field(description="this stage's output / the first stage's input")


class PipelineFunnel(BaseModel):
    pipeline_id: str
    window: str
    order_from: Literal["request", "operator_kind"] = Field(
        description="request: the stages are those of ``order``, in that order; "
        "operator_kind: every operator, sources first, then per-record operators, "
        "windows, aggregations and joins, sinks last, and within a kind the one with "
        "more input first (a guess: the store does not know the topology)"
    )
    stages: list[FunnelStage]


class WindowBounds(BaseModel):
    window_start: int = Field(description="epoch ms, inclusive")
    window_end: int = Field(description="epoch ms, exclusive")


class WindowFires(WindowBounds):
    fires: int = Field(
        description="AGGREGATE events of this window: one per key and subtask in Flink, "
        "one per micro-batch in Spark"
    )
    input_count: int | None
    output_count: int | None
    late_count: int | None = Field(
        description="null where the engine drops late records before the operator sees "
        "them (Flink windows)"
    )
    late_rate: float | None = Field(description="late / input")
    first_fire: int = Field(description="processing time of its first fire, epoch ms")
    last_fire: int = Field(description="processing time of its last fire, epoch ms")
    fire_delay_seconds: float = Field(description="last fire minus window end")


class FireDelay(BaseModel):
    p50_seconds: float
    p95_seconds: float
    max_seconds: float


class WindowOperator(BaseModel):
    operator_id: str
    operator_type: str
    windows: int = Field(description="distinct windows that fired in the query window")
    fires: int
    window_length_ms: int | None = Field(
        description="null when windows differ in length (session windows, Spark "
        "micro-batches spanning several windows)"
    )
    step_ms: int | None = Field(
        description="distance between consecutive window starts: the size of tumbling "
        "windows, the slide of sliding ones"
    )
    fire_delay: FireDelay = Field(
        description="processing time of each fire minus its window's end, over every fire: "
        "how long after a window closed its results were captured"
    )
    late_rate: float | None = Field(description="late / input over the fires that count late")
    missing_count: int | None = Field(
        description="windows on the grid between the first and the last fire that never "
        "fired for any key: no record arrived for that event-time range; null when "
        "missing_note says why they were not looked for"
    )
    missing: list[WindowBounds] = Field(description="the newest missing windows, at most 100")
    missing_note: str | None
    recent: list[WindowFires] = Field(description="the newest windows, at most `limit`")


class PipelineWindows(BaseModel):
    pipeline_id: str
    window: str
    operators: list[WindowOperator] = Field(
        description="operators whose AGGREGATE events carry window bounds"
    )


Value = bool | int | float | str | list[float] | None
"""A feature value as its type stores it."""


class FeatureValue(BaseModel):
    operator_id: str
    event_time: int | None
    processing_time: int
    value_type: str | None
    value: Value
    trace_id: str | None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Self:
        """From a store row; the extra fields of subclasses come from ``row`` by name."""
        return cls(
            **{k: row[k] for k in cls.model_fields if k in row},
            value=typed_value(row),
        )


def typed_value(row: dict[str, Any]) -> Value:
    """The value as its type stores it (the typed columns are absent for doubles)."""
    for typed in ("feature_value_bool", "feature_value_long", "feature_value_string",
                  "feature_value_vector"):  # fmt: skip
        if row.get(typed) is not None:
            value: bool | int | str | list[float] = row[typed]
            return value
    number: float | None = row["feature_value"]
    return number


class EntityValue(FeatureValue):
    pipeline_id: str
    feature: str

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Self:
        return super().from_row({**row, "feature": row["feature_name"]})


class FeatureValues(BaseModel):
    feature: str
    pipeline_id: str
    entity_id: str
    window: str
    values: list[FeatureValue]


class AsOfAnswer(BaseModel):
    entity_id: str
    at: int = Field(description="the moment asked about, epoch ms")
    by: Literal["processing", "event"] = Field(
        description="processing: the last value processed at or before `at` (what the "
        "pipeline held then); event: the value of the latest event time at or before `at`, "
        "as known at `known_at`"
    )
    known_at: int = Field(
        description="values processed after this are not considered, epoch ms (`at` itself "
        "when by=processing)"
    )
    since: int = Field(
        description="`at` minus `lookback`: values with times before it are not considered"
    )


class FeatureValuesAsOf(AsOfAnswer):
    feature: str
    pipeline_id: str
    values: list[FeatureValue] = Field(
        description="one per operator that captured the feature for the entity, by operator id"
    )


class AsOfLookup(BaseModel):
    entity_id: str = Field(min_length=1)
    at: str | int = Field(description="an ISO-8601 time or epoch ms")


class AsOfLookups(BaseModel):
    """Many entities, each at its own moment: the point-in-time join of a table of
    (entity, time) rows, such as a model's prediction log, with what faro captured."""

    lookups: list[AsOfLookup] = Field(min_length=1, max_length=10_000)
    by: Literal["processing", "event"] = "processing"
    known_at: str | int | None = Field(
        default=None, description="with by=event: an ISO-8601 time or epoch ms (default: now)"
    )
    lookback: str = Field(default="7d", description="how far before each `at` to look")
    pipeline_id: str | None = Field(default=None, description="only this pipeline's values")
    features: list[str] | None = Field(
        default=None, max_length=1000, description="only these features (default: all)"
    )


class EntityValuesAsOf(AsOfAnswer):
    values: list[EntityValue] = Field(
        description="one per pipeline, feature and operator that captured the entity, in that order"
    )


class ManyAsOf(BaseModel):
    by: Literal["processing", "event"]
    lookback: str
    answers: list[EntityValuesAsOf] = Field(description="one per lookup, in their order")


class ServedValue(AsOfLookup):
    at: str | int = Field(description="when the model read the value: an ISO-8601 time or epoch ms")
    value: Value = Field(description="the value the model was served, as it logged it")


class SkewCheck(BaseModel):
    """A model's log of served values, to check against what the pipeline computed."""

    pipeline_id: str
    operator_id: str | None = Field(
        default=None,
        description="the operator whose values to compare with (default: for each row, the "
        "one that processed the entity's value last by then: the pipeline's latest word)",
    )
    rows: list[ServedValue] = Field(min_length=1, max_length=10_000)
    lookback: str = Field(default="7d", description="how far before each `at` to look")
    abs_tol: float = Field(default=1e-9, ge=0, description="numbers within this match")
    rel_tol: float = Field(
        default=1e-9, ge=0, description="... or within this fraction of the larger one"
    )


class SkewRow(BaseModel):
    index: int = Field(description="the row's position in the request")
    entity_id: str
    at: int = Field(description="epoch ms")
    served: Value
    captured: FeatureValue = Field(
        description="what the pipeline held at `at`: the value last processed by then"
    )
    abs_diff: float | None = Field(description="|served - captured| for numbers")
    served_processed_at: int | None = Field(
        description="when the operator last processed the served value before its current one "
        "(epoch ms): set when the model was served an outdated value"
    )
    outdated_ms: int | None = Field(
        description="how long the served value had been replaced at `at`, in ms"
    )


class MissingRow(BaseModel):
    index: int = Field(description="the row's position in the request")
    entity_id: str
    at: int = Field(description="epoch ms")


class SkewHour(BaseModel):
    start: int = Field(description="the UTC hour's start, epoch ms")
    rows: int
    compared: int
    mismatched: int
    outdated: int


class SkewReport(BaseModel):
    feature: str
    pipeline_id: str
    operator_id: str | None
    lookback: str
    rows: int
    compared: int = Field(description="rows for which the store holds a captured value")
    matched: int
    mismatched: int
    outdated: int = Field(
        description="mismatched rows whose served value the operator had processed before: "
        "a serving store behind the pipeline"
    )
    not_captured: int = Field(
        description="rows with no captured value in the lookback: `not_sampled` + `missing`"
    )
    sample_rate: float | None = Field(
        description="the feature's sample rate, as its captured events carry it (the "
        "operator's, or the largest of the pipeline's operators): what tells the two apart"
    )
    not_sampled: int | None = Field(
        description="rows of entities that sampling leaves out: nothing to compare with, as "
        "expected (null when no captured value tells the sample rate)"
    )
    mismatch_rate: float | None = Field(description="mismatched / compared")
    hours: list[SkewHour] = Field(
        description="the same counts per UTC hour of the rows' `at`, oldest first: when the "
        "serving path went wrong"
    )
    mismatches: list[SkewRow] = Field(description="every mismatched row, in request order")
    missing: list[MissingRow] = Field(
        description="rows of sampled entities with no captured value in the lookback before "
        "`at`: the model was served a value the pipeline had not computed for it (yet)"
    )


class DifferentRecord(BaseModel):
    entity_id: str
    event_time: int = Field(description="the record's event time, epoch ms")
    value: Value = Field(description="the value `operator_id` of `pipeline_id` computed")
    against_value: Value = Field(description="the value `against_operator_id` computed")
    abs_diff: float | None = Field(description="|value - against_value| for numbers")
    processed_at: int = Field(description="when `operator_id` processed it, epoch ms")
    against_processed_at: int


class OneSidedRecord(BaseModel):
    entity_id: str
    event_time: int = Field(description="epoch ms")
    side: Literal["pipeline", "against"] = Field(description="the side that has the record")
    value: Value
    processed_at: int = Field(description="epoch ms")


class ComparisonHour(BaseModel):
    start: int = Field(description="the UTC hour of event time, epoch ms")
    compared: int
    mismatched: int
    only_in_pipeline: int
    only_in_against: int


class FeatureComparison(BaseModel):
    feature: str
    pipeline_id: str
    operator_id: str
    against: str = Field(description="the pipeline compared with (`pipeline_id` when not given)")
    against_operator_id: str
    window: str
    since: int = Field(description="records with event times from here, epoch ms")
    until: int = Field(description="... up to here (exclusive), epoch ms")
    sample_rate: float | None = Field(description="the rate `operator_id`'s values carry")
    against_sample_rate: float | None
    compared: int = Field(description="records both operators captured")
    matched: int
    mismatched: int
    mismatch_rate: float | None = Field(description="mismatched / compared")
    max_abs_diff: float | None = Field(description="the largest difference of a number")
    mean_diff: float | None = Field(
        description="`against`'s value minus `pipeline_id`'s, on average over the compared "
        "records whose values are numbers: a version off in one direction (a bias) shows "
        "here, while errors both ways cancel out"
    )
    only_in_pipeline: int = Field(
        description="records of entities both operators sample that only `operator_id` "
        "captured, although `against_operator_id` has captured later records"
    )
    only_in_against: int
    pending: int = Field(
        description="records one side captured later than anything the other has captured "
        "yet: it has not got that far, which is lag, not loss"
    )
    out_of_sample: int = Field(
        description="records one side captured of entities the other does not sample (the "
        "sides sample at different rates): not compared"
    )
    delay_p50_ms: float | None = Field(
        description="`against_operator_id`'s processing time minus `operator_id`'s for the "
        "same record, median over the compared records (negative: `against` is earlier)"
    )
    delay_p95_ms: float | None
    hours: list[ComparisonHour] = Field(
        description="the counts per UTC hour of event time, oldest first: since when the two "
        "disagree"
    )
    mismatches: list[DifferentRecord] = Field(
        description="the first `limit` mismatched records, by event time"
    )
    one_sided: list[OneSidedRecord] = Field(
        description="the first `limit` records of `only_in_pipeline` and `only_in_against`, "
        "by event time"
    )


class WindowMeasures(BaseModel):
    input_count: int | None = Field(description="records in, summed over keys and subtasks")
    output_count: int | None
    values: int | None = Field(
        description="the feature's values counted by the operator's statistics (null: it has "
        "none for this feature)"
    )
    nulls: int | None
    sum: float | None
    min: float | None
    max: float | None
    last_fire: int = Field(description="when the window last fired, epoch ms")


class ComparedWindow(BaseModel):
    window_start: int = Field(description="epoch ms")
    window_end: int
    pipeline: WindowMeasures | None = Field(description="null: `operator_id` has no such window")
    against: WindowMeasures | None
    differs: list[str] = Field(description="the measures that differ between the two")


class WindowComparison(BaseModel):
    feature: str
    pipeline_id: str
    operator_id: str
    against: str
    against_operator_id: str
    window: str
    since: int = Field(description="windows ending from here, epoch ms")
    until: int = Field(description="... up to here (exclusive), epoch ms")
    compared: int = Field(description="windows both operators fired")
    matched: int
    mismatched: int
    mismatch_rate: float | None = Field(description="mismatched / compared")
    differing: dict[str, int] = Field(
        description="per measure, the compared windows where it differs"
    )
    only_in_pipeline: int = Field(
        description="windows only `operator_id` fired, although `against_operator_id` has "
        "fired later ones"
    )
    only_in_against: int
    pending: int = Field(
        description="windows one side fired that end later than any the other has fired yet"
    )
    mismatches: list[ComparedWindow] = Field(
        description="the first `limit` mismatched windows, by end"
    )
    one_sided: list[ComparedWindow] = Field(
        description="the first `limit` windows of `only_in_pipeline` and `only_in_against`, by end"
    )


class ValueSummary(BaseModel):
    feature: str
    pipeline_id: str
    window: str
    since: int = Field(description="window start, epoch ms")
    until: int = Field(description="window end (exclusive), epoch ms: the next whole minute")
    source: Literal["ENTITY", "AGGREGATE", "NONE"] = Field(
        description="ENTITY when computed from sampled entity values; AGGREGATE when only "
        "per-flush statistics exist (suppressed features), so percentiles are unknown"
    )
    count: int
    nulls: int
    min: float | None
    max: float | None
    mean: float | None
    stddev: float | None
    p50: float | None
    p95: float | None
    p99: float | None


class TraceEvent(BaseModel):
    pipeline_id: str
    operator_id: str
    operator_type: str
    feature_name: str | None
    entity_id: str | None
    feature_value: float | None
    value_type: str | None
    event_time: int | None
    processing_time: int
    subtask_index: int
    event_id: str


class Trace(BaseModel):
    trace_id: str
    events: list[TraceEvent]


class LineageStep(BaseModel):
    pipeline_id: str
    operator_id: str
    operator_type: str
    feature_name: str | None
    feature_value: float | None
    event_time: int | None
    processing_time: int
    trace_id: str | None


class Lineage(BaseModel):
    entity_id: str
    steps: list[LineageStep]


class Bucket(BaseModel):
    start: int = Field(description="bucket start, epoch ms")
    input_count: int
    output_count: int
    late_count: int
    entity_values: int = Field(description="ENTITY events of the feature (sampled)")
    entities: int | None = Field(
        description="distinct entities among them; only with distinct_entities=true"
    )


class FeatureWindow(BaseModel):
    since: int
    until: int
    buckets: list[Bucket]
    input_count: int
    output_count: int
    filter_ratio: float | None
    late_rate: float | None = Field(
        description="null when no operator of the feature counts late records (Flink windows)"
    )
    watermark_lag_seconds: float | None = Field(description="mean over the window's flushes")
    max_watermark_lag_seconds: float | None
    null_rate: float | None
    mean: float | None
    values_from: Literal["ENTITY", "AGGREGATE", "NONE"]


class ViolationOut(BaseModel):
    """One violation episode; times are epoch ms (UTC) of detection runs."""

    violation_id: str
    type: str
    severity: str
    status: Literal["OPEN", "RESOLVED"]
    pipeline_id: str
    operator_id: str | None
    feature: str | None
    metric: str
    window_start: int
    window_end: int
    opened_at: int
    last_seen_at: int
    resolved_at: int | None
    observed: float
    baseline: float | None
    threshold: float
    message: str

    def open_at(self, moment: int) -> bool:
        """Opened at or before ``moment`` and not resolved by then."""
        return self.opened_at <= moment and (self.resolved_at is None or self.resolved_at > moment)


class Violations(BaseModel):
    count: int
    violations: list[ViolationOut]


class FeatureHealth(BaseModel):
    feature: str
    pipeline_id: str
    window: str
    bucket_seconds: float
    current: FeatureWindow
    open_violations: list[ViolationOut] = Field(
        default_factory=list,
        description="violations of this feature open at the window's end (now, by default)",
    )
    compare_to: str | None = None
    previous: FeatureWindow | None = None
    deltas: dict[str, float | None] | None = Field(
        default=None, description="current minus previous, per scalar metric"
    )


class StoreHolding(BaseModel):
    event_type: str
    pipeline_id: str
    events: int
    files: int
    bytes: int
    first_date: str = Field(description="the oldest date partition (UTC)")
    last_date: str
    newest: int | None = Field(description="the latest processing time stored, epoch ms")
    partitions_to_compact: int = Field(description="date partitions of two files or more")


class DeadLetterKind(BaseModel):
    reason: str = Field(description="the reason up to its first colon")
    count: int


class NewestDeadLetter(BaseModel):
    source: str | None = Field(description="a Kafka topic, or a Delta table (`delta:...`)")
    partition: int | None
    offset: int | None = Field(description="the Kafka offset, or the Delta version")
    reason: str
    received_at: int = Field(description="epoch ms")


class StoreDeadLetters(BaseModel):
    count: int
    kinds: list[DeadLetterKind] = Field(description="the five commonest, most first")
    newest: NewestDeadLetter | None


class StoreStatusOut(BaseModel):
    data_dir: str
    events: int
    files: int
    bytes: int
    newest: int | None = Field(description="the latest processing time stored, epoch ms")
    partitions_to_compact: int = Field(description="what `faro compact` would merge")
    holdings: list[StoreHolding] = Field(description="per event type and pipeline")
    dead_letters: StoreDeadLetters
    progress: dict[str, dict[str, int]] = Field(
        description="per source, how far the store has got: per Kafka topic the last offset "
        "stored per partition, per Delta table (`delta:...`) the version"
    )
    unfinished_changes: int = Field(
        description="journal entries decided but not applied: a writer is applying them, or "
        "stopped mid-way and finishes them when it starts again"
    )
