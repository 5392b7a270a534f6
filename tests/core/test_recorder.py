import math
import random
import statistics
from dataclasses import dataclass

import pytest

from faro import (
    DataClassification,
    EventType,
    FaroConfig,
    FaroFeatureConfig,
    FeatureValueType,
    OperatorRecorder,
    OperatorType,
)
from tests.support import ListSink


@dataclass
class Purchase:
    user_id: str
    amount: float | None
    ts: int


def _purchases(n: int, seed: int = 7) -> list[Purchase]:
    rng = random.Random(seed)
    out = []
    for _i in range(n):
        amount = None if rng.random() < 0.1 else round(rng.uniform(-50, 500), 2)
        out.append(Purchase(f"user-{rng.randrange(40)}", amount, 1_000_000 + rng.randrange(60_000)))
    return out


def test_aggregate_counts_and_stats_match_ground_truth() -> None:
    sink = ListSink()
    config = FaroConfig(features={"amount": FaroFeatureConfig(feature_value=lambda p: p.amount)})
    rec = OperatorRecorder("pipe", "filter-big", OperatorType.FILTER, config, sink, subtask_index=3)
    purchases = _purchases(5000)
    rec.on_watermark(1_030_000)
    kept = 0
    for p in purchases:
        rec.record_in(p, p.ts)
        if p.amount is not None and p.amount > 100:
            rec.record_out(p)
            kept += 1
    event = rec.flush(window_start=1_000_000, window_end=1_060_000)

    values = [p.amount for p in purchases if p.amount is not None]
    assert sink.events == [event]
    assert event.event_type is EventType.AGGREGATE
    assert (event.input_count, event.output_count) == (len(purchases), kept)
    assert event.late_count == sum(1 for p in purchases if p.ts < 1_030_000)
    assert event.event_time_min == min(p.ts for p in purchases)
    assert event.event_time_max == max(p.ts for p in purchases)
    assert (event.window_start, event.window_end, event.watermark) == (
        1_000_000,
        1_060_000,
        1_030_000,
    )
    assert event.subtask_index == 3
    [stats] = event.feature_stats
    assert (stats.name, stats.count, stats.null_count) == (
        "amount",
        len(purchases),
        len(purchases) - len(values),
    )
    assert stats.sum == pytest.approx(math.fsum(values))
    assert stats.sum_sq == pytest.approx(math.fsum(v * v for v in values))
    assert (stats.min, stats.max) == (min(values), max(values))


def test_flush_resets_counts_but_keeps_the_watermark() -> None:
    sink = ListSink()
    rec = OperatorRecorder("p", "m", OperatorType.MAP, FaroConfig(), sink)
    rec.on_watermark(500)
    rec.record_in("a", 400)
    rec.record_out("a")
    first = rec.flush()
    rec.on_watermark(-(2**63))  # an engine's "no watermark yet" never moves it back
    rec.on_watermark(2**63 - 1)  # nor does "end of input"
    second = rec.flush()
    assert (first.input_count, first.output_count, first.late_count) == (1, 1, 1)
    assert (second.input_count, second.output_count, second.late_count) == (0, 0, 0)
    assert second.watermark == 500 and second.event_time_min is None
    assert first.event_id != second.event_id


def test_an_engines_no_timestamp_value_is_not_an_event_time() -> None:
    sink = ListSink()
    rec = OperatorRecorder("p", "m", OperatorType.MAP, FaroConfig(), sink)
    rec.on_watermark(500)
    assert rec.record_in("no timestamp", -(2**63)) is None  # Flink's Long.MIN_VALUE
    assert rec.record_in("end of input", 2**63 - 1) is None  # and its Long.MAX_VALUE
    assert rec.record_in("real", 700) == 700
    assert rec.record_in("no timestamp", -(2**63)) is None  # below the min so far
    assert rec.record_in("end of input", 2**63 - 1) is None  # above the max so far
    event = rec.flush()
    assert (event.input_count, event.late_count) == (5, 0)
    assert (event.event_time_min, event.event_time_max) == (700, 700)


def test_folded_records_count_as_inputs_with_their_time_range_and_none_late() -> None:
    sink = ListSink()
    rec = OperatorRecorder("p", "w", OperatorType.WINDOW, FaroConfig(), sink, observes_late=False)
    rec.on_watermark(10_000)  # folds hold no late record, whatever their times
    panes = [(40, 1_000, 9_000), (7, 500, 2_000), (3, None, None)]
    for count, earliest, latest in panes:
        rec.record_folded(count, earliest, latest)
    rec.record_folded(2, 2**62, -(2**62) - 1)  # a fold with no time: its bounds are sentinels
    event = rec.flush()
    assert (event.input_count, event.late_count) == (52, None)
    assert (event.event_time_min, event.event_time_max) == (500, 9_000)


def test_named_features_take_statistics_from_output_fields() -> None:
    sink = ListSink()
    rec = OperatorRecorder(
        "p", "agg", OperatorType.WINDOW, FaroConfig(features=["order_count", "revenue_7d"]), sink
    )
    outputs = [{"order_count": c, "revenue_7d": r} for c, r in [(3, 10.5), (1, None), (7, 2.0)]]
    for o in outputs:
        rec.record_out(o)
    rec.record_out({"unrelated": 1})  # no such field: not counted at all
    stats = {s.name: s for s in rec.flush().feature_stats}
    assert (stats["order_count"].count, stats["order_count"].sum, stats["order_count"].max) == (
        3,
        11.0,
        7.0,
    )
    assert (stats["revenue_7d"].count, stats["revenue_7d"].null_count, stats["revenue_7d"].sum) == (
        3,
        1,
        12.5,
    )


def test_entity_events_one_per_record_with_values_and_trace_ids() -> None:
    sink = ListSink()
    spec = FaroFeatureConfig(entity_key="user_id", feature_value="amount", sample_rate=1.0)
    rec = OperatorRecorder(
        "user-feature-pipeline",
        "rolling",
        OperatorType.WINDOW,
        FaroConfig(features={"purchase_amount_7d": spec}),
        sink,
    )
    purchases = _purchases(300)
    for p in purchases:
        rec.record_in(p, p.ts)
    entities = sink.of_type(EventType.ENTITY)
    assert [(e.entity_id, e.feature_value, e.event_time) for e in entities] == [
        (p.user_id, p.amount, p.ts) for p in purchases
    ]
    assert {e.feature_name for e in entities} == {"purchase_amount_7d"}
    assert all(e.value_type is FeatureValueType.SCALAR_DOUBLE for e in entities)
    assert len({e.trace_id for e in entities}) == len({(p.user_id, p.ts) for p in purchases})


@pytest.mark.parametrize(
    "classification", [DataClassification.PERSONAL, DataClassification.SENSITIVE]
)
def test_personal_features_degrade_to_aggregate(classification: DataClassification) -> None:
    sink = ListSink()
    spec = FaroFeatureConfig(
        entity_key="user_id", feature_value="amount", classification=classification
    )
    rec = OperatorRecorder(
        "p", "w", OperatorType.WINDOW, FaroConfig(features={"amount": spec}), sink
    )
    purchases = _purchases(500)
    for p in purchases:
        rec.record_in(p, p.ts)
    event = rec.flush()
    assert sink.of_type(EventType.ENTITY) == []
    assert sink.events == [event]
    assert event.feature_stats[0].count == len(purchases)


def test_long_values_and_output_side_entities() -> None:
    sink = ListSink()
    spec = FaroFeatureConfig(
        entity_key=lambda r: r[0],
        feature_value=lambda r: r[1],
        value_type=FeatureValueType.SCALAR_LONG,
        on="output",
    )
    rec = OperatorRecorder("p", "m", OperatorType.MAP, FaroConfig(features={"n": spec}), sink)
    rec.record_in(("ignored-input", 1.5))
    rec.record_out(("u1", 4.0), 77)
    [entity] = sink.of_type(EventType.ENTITY)
    assert (entity.entity_id, entity.feature_value, entity.event_time) == ("u1", 4, 77)
    assert type(entity.feature_value) is int


def test_failing_extractors_and_sinks_never_raise_into_the_pipeline() -> None:
    class Exploding:
        def emit(self, event):
            raise RuntimeError("destination down")

        def flush(self, timeout=None):
            raise RuntimeError("still down")

        def close(self) -> None:
            raise RuntimeError("still down")

    spec = FaroFeatureConfig(entity_key="u", feature_value=lambda r: r["missing"])
    rec = OperatorRecorder(
        "p", "m", OperatorType.MAP, FaroConfig(features={"f": spec}), Exploding()
    )
    for i in range(10):
        rec.record_in({"u": i}, i)
    event = rec.flush()
    assert event.input_count == 10
    rec.record_in({"u": 0}, 0)
    rec.close(timeout=0.1)
    assert rec.failures.count == 11 + 2 + 1  # 11 extractor errors, 2 emits, the sink's flush


def test_one_feature_without_entities_counts_what_it_reads_and_what_fails() -> None:
    """One feature without ENTITY events, the usual AGGREGATE operator: every output
    is counted, a record without the field adds nothing to the statistics, a failing
    extractor is counted, and the values fold across chunks."""
    rng = random.Random(3)
    records = [{"x": rng.uniform(-9, 9)} if rng.random() < 0.9 else {"y": 1} for _ in range(5000)]
    values = [r["x"] for r in records if "x" in r]

    named = OperatorRecorder("p", "w", OperatorType.WINDOW, FaroConfig(features=["x"]), ListSink())
    for r in records:
        named.record_out(r)
    event = named.flush()
    [s] = event.feature_stats
    assert (event.output_count, s.count, s.null_count) == (len(records), len(values), 0)
    assert (s.min, s.max, s.sum) == (min(values), max(values), pytest.approx(math.fsum(values)))

    feature = FaroFeatureConfig(feature_value=lambda r: r["x"])  # KeyError without "x"
    config = FaroConfig(features={"x": feature})
    read = OperatorRecorder("p", "m", OperatorType.MAP, config, ListSink())
    for r in records:
        read.record_in(r)
    event = read.flush()
    [s] = event.feature_stats
    assert (event.input_count, s.count, s.sum) == (
        len(records),
        len(values),
        pytest.approx(math.fsum(values)),
    )
    assert read.failures.count == len(records) - len(values)


def test_stats_mean_and_variance_derivable_without_entity_data() -> None:
    sink = ListSink()
    rng = random.Random(1)
    values = [rng.gauss(100, 15) for _ in range(2000)] + [float("nan")] * 5
    rec = OperatorRecorder(
        "p",
        "m",
        OperatorType.MAP,
        FaroConfig(features={"x": FaroFeatureConfig(feature_value=lambda v: v)}),
        sink,
    )
    for v in values:
        rec.record_in(v)
    [s] = rec.flush().feature_stats
    n = s.count - s.null_count
    mean = s.sum / n
    var = s.sum_sq / n - mean * mean
    clean = values[:-5]
    assert s.null_count == 5
    assert mean == pytest.approx(statistics.fmean(clean))
    assert var == pytest.approx(statistics.pvariance(clean), rel=1e-6)


def test_operators_that_cannot_see_late_records_report_none_not_zero() -> None:
    sink = ListSink()
    rec = OperatorRecorder("p", "w", OperatorType.WINDOW, FaroConfig(), sink, observes_late=False)
    rec.on_watermark(100)
    rec.record_in("x", 5)
    assert rec.flush().late_count is None


def test_close_flushes_only_what_is_pending() -> None:
    sink = ListSink()
    rec = OperatorRecorder("p", "w", OperatorType.WINDOW, FaroConfig(), sink)
    rec.record_in("x")
    rec.flush(window_start=0, window_end=10)
    rec.close()
    assert len(sink.events) == 1 and sink.closed


def test_named_fields_are_read_from_every_record_shape_the_engines_hand_over() -> None:
    from pyflink.common import Row as FlinkRow
    from pyspark.sql import Row as SparkRow

    from faro.core.recorder import _MISSING, field_getter

    read = field_getter("amount")
    records = [
        {"user_id": "u", "amount": 1.5},
        Purchase("u", 2.5, 0),
        FlinkRow(user_id="u", amount=3.5),
        SparkRow(user_id="u", amount=4.5),
        {"user_id": "u", "amount": 5.5},  # a type seen before: its cached reader
        FlinkRow(amount=6.5, user_id="u"),  # the same type, other field order
    ]
    assert [read(r) for r in records] == [1.5, 2.5, 3.5, 4.5, 5.5, 6.5]
    missing = [{"user_id": "u"}, FlinkRow(user_id="u"), SparkRow(user_id="u")]
    assert [read(r) for r in missing] == [_MISSING] * len(missing)
    with pytest.raises(AttributeError):  # a row without names: the recorder logs why
        read(FlinkRow("u", 1.0))


def _reference_stats(values: list) -> tuple:
    """count, nulls, sum, sum of squares, min, max, value by value as the docs define them."""
    numbers = []
    for v in values:
        try:
            f = float(v) if v is not None else math.nan
        except (TypeError, ValueError):
            f = math.nan
        if f == f:
            numbers.append(f)
    return (
        len(values),
        len(values) - len(numbers),
        math.fsum(numbers),
        math.fsum(x * x for x in numbers),
        min(numbers),
        max(numbers),
    )


@pytest.mark.parametrize("seed", range(4))
def test_stats_are_the_same_whether_a_chunk_folds_in_bulk_or_value_by_value(seed: int) -> None:
    """Values are folded in chunks, in bulk when a chunk is all numbers and one by
    one when it holds a null, a NaN or a string: both must give the same figures."""
    rng = random.Random(seed)
    odd = [None, math.nan, "12.5", "n/a", True, 7]
    values: list = []
    for _chunk in range(6):  # some chunks only numbers (ints and floats), some mixed
        mixed = rng.random() < 0.5
        for _ in range(rng.randrange(500, 2500)):
            if mixed and rng.random() < 0.02:
                values.append(rng.choice(odd))
            else:
                values.append(rng.uniform(-1e3, 1e3) if rng.random() < 0.8 else rng.randrange(99))
    sink = ListSink()
    feature = FaroFeatureConfig(feature_value=lambda v: v)
    rec = OperatorRecorder("p", "m", OperatorType.MAP, FaroConfig(features={"x": feature}), sink)
    for v in values:
        rec.record_in(v)
    [s] = rec.flush().feature_stats
    count, nulls, total, total_sq, low, high = _reference_stats(values)
    assert (s.count, s.null_count, s.min, s.max) == (count, nulls, low, high)
    assert (s.sum, s.sum_sq) == (pytest.approx(total), pytest.approx(total_sq))
