"""FaroSpark: traces a transform inside ``foreachBatch`` without running anything twice.

How a micro-batch is counted: the trace puts one ``DataFrame.observe`` on the
transform's input (rows, event-time min/max, rows below the watermark) and one
on its output (rows, window bounds, statistics of output columns named as
features). Spark fills both while it runs the user's own write, in the same
job, so capture adds no pass over the data. The AGGREGATE event is therefore
completed after the write: when the listener reports the batch finished, or
at the trace's next batch, or at ``close()``.

ENTITY events need the records: for features with ``entity_key`` and
``feature_value`` the trace projects those columns, keeps the rows of sampled
entities (the core's sampling hash is Spark's ``xxhash64``, so this happens in
the JVM) and emits from the executors with ``mapPartitions`` (one extra job
over the projected columns; on the output side the output is persisted first
so the transform still runs once). No record reaches the driver; with a
staging sink (Delta) the tasks return the files they wrote, and the driver
commits them as one transaction.

A streaming DataFrame (a query built without ``foreachBatch``, such as a stateful
windowed aggregation written with ``writeStream``) is observed the same way,
once, when the query is defined; Spark then reports both observations with
each micro-batch's progress, and the listener completes the event from it.
"""

from __future__ import annotations

import itertools
import logging
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from pyspark.sql import Column, DataFrame, Observation, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import (
    BooleanType,
    NumericType,
    StructType,
    TimestampNTZType,
    TimestampType,
)

from faro.core.config import FaroConfig, FaroFeatureConfig
from faro.core.events import FeatureStats, OperatorType, parse_enum
from faro.core.failures import FailureLog
from faro.core.recorder import OperatorRecorder
from faro.core.sampling import SAMPLE_SHIFT, sample_threshold
from faro.core.sink import (
    CaptureEventSink,
    SinkFactory,
    StagingSink,
    build_sink,
    check_factory,
)
from faro.spark.executor import EntityWriter, column_at
from faro.spark.listener import FaroStreamingListener, QueryProgress
from faro.spark.queries import QueryReports

log = logging.getLogger("faro.spark")

Transform = Callable[[DataFrame], DataFrame]


class FaroSpark:
    """Traces one pipeline's transforms (inside ``foreachBatch``, or on streaming
    DataFrames) and, with :meth:`trace_queries`, its queries; on the driver.

    ``sink`` is a factory (``DeltaCaptureEventSink.factory(path)``,
    ``KafkaCaptureEventSink.factory(...)``): the driver builds one sink for the
    AGGREGATE events, and each executor's Python worker process one for its
    ENTITY events, which it keeps from task to task (``faro.spark.executor``).
    """

    def __init__(self, pipeline_id: str, sink: SinkFactory):
        if not pipeline_id:
            raise ValueError("pipeline_id must be a non-empty string such as 'order-pipeline'")
        self.pipeline_id = pipeline_id
        self.sink_factory = check_factory(sink)
        self.sink_key = uuid.uuid4().hex  # names this pipeline's sink in executor processes
        self.event_time_col: str | None = None
        self.window_col: str | None = None
        self.listener: FaroStreamingListener | None = None
        self.failures = FailureLog(f"faro pipeline {pipeline_id!r}", log)
        self._sink: CaptureEventSink | None = None
        self._lock = threading.RLock()
        self._traces: list[SparkTrace] = []
        self._streamed: SparkSession | None = None  # the session of the queries it follows
        self._queries: QueryReports | None = None

    def with_streaming_context(
        self,
        *,
        event_time_col: str | None = None,
        window_col: str | None = None,
        listener: FaroStreamingListener | None = None,
    ) -> FaroSpark:
        """``event_time_col``: the input's event-time column (timestamp, or epoch ms);
        ``window_col``: the output's window struct (``F.window(...)``); ``listener``:
        a registered :class:`FaroStreamingListener`, which reports each batch as soon
        as Spark finishes it."""
        self.event_time_col = event_time_col
        self.window_col = window_col
        if listener is not None and listener is not self.listener:
            listener.subscribe(self._on_progress)
        self.listener = listener
        return self

    def trace(
        self,
        operator_id: str,
        operator_type: OperatorType | str,
        config: FaroConfig | None,
        fn: Transform,
    ) -> SparkTrace:
        """A traced ``fn``; create it once (outside ``foreachBatch`` or inside: the
        same operator id returns the same trace)."""
        with self._lock:
            for t in self._traces:
                if t.operator_id == operator_id:
                    t.fn = fn
                    return t
            t = SparkTrace(self, operator_id, parse_enum(OperatorType, operator_type,
                           "operator_type"), config or FaroConfig(), fn)  # fmt: skip
            self._traces.append(t)
            return t

    def trace_queries(self, *names: str) -> FaroSpark:
        """Reports each micro-batch of the streaming queries called ``names``
        (``writeStream.queryName``; every query of the session when none is named)
        as one AGGREGATE event of a SOURCE operator named after the query: the rows
        it read, the rows its stateful operators dropped behind the watermark, its
        watermark and event-time range, from the query's progress alone."""
        self._needs_listener("trace_queries reads each query's progress")
        with self._lock:
            self._queries = QueryReports(self.pipeline_id, _DriverSink(self), frozenset(names))
            self._streamed = self._streamed or SparkSession.getActiveSession()
        return self

    def _needs_listener(self, why: str) -> None:
        if self.listener is None:
            raise ValueError(
                f"{why}: add a FaroStreamingListener to spark.streams and pass it to "
                "with_streaming_context(listener=...) first"
            )

    def flush(self, timeout: float = 5.0) -> None:
        """Reports every batch whose write has finished, then flushes the driver sink."""
        if self._streamed is not None:
            self._drain_listeners(self._streamed, timeout)
        for t in list(self._traces):
            t.complete()
        with self._lock:
            if self._sink is not None:
                self._sink.flush(timeout)

    def close(self, timeout: float = 5.0) -> None:
        self.flush(timeout)
        for t in list(self._traces):
            t.abandon()
        with self._lock:
            if self._sink is not None:
                self._sink.close()
                self._sink = None

    def driver_sink(self) -> CaptureEventSink:
        with self._lock:
            if self._sink is None:
                self._sink = build_sink(self.sink_factory, self.failures)
            return self._sink

    def _drain_listeners(self, session: SparkSession, timeout: float) -> None:
        """Waits until Spark has handed every progress report posted so far to the
        listeners (they travel on an asynchronous bus), so a query stopped just before
        ``close()`` still reports its last micro-batches."""
        try:
            bus = session.sparkContext._jsc.sc().listenerBus()
            bus.waitUntilEmpty(int(timeout * 1000))
        except Exception as exc:  # Spark Connect, or the bus stayed busy
            self.failures.record("waiting for the last progress reports failed", exc)

    def _on_progress(self, progress: QueryProgress) -> None:
        if self._queries is not None:
            try:
                with self._lock:
                    self._queries.report(progress)
            except Exception as exc:  # never into Spark's listener bus
                self.failures.record("reporting a query's micro-batch failed", exc)
        for t in list(self._traces):
            try:
                t.report_stream(progress)
                t.complete(progress.query_id, progress.batch_id)
            except Exception as exc:  # never into Spark's listener bus
                self.failures.record("reporting a finished micro-batch failed", exc)


@dataclass
class _Pending:
    batch_id: int | None
    query_id: str | None
    watermark: int | None
    observed_in: Observation
    observed_out: Observation
    persisted: DataFrame | None
    features: list[tuple[str, bool]]
    windowed: bool


@dataclass(frozen=True)
class _Observed:
    """A streaming DataFrame the trace observed: each progress report of its query
    carries the metrics of both observations under these names."""

    name_in: str
    name_out: str
    features: list[tuple[str, bool]]
    windowed: bool


_stream_ids = itertools.count()  # keeps observation names unique within any query


class SparkTrace:
    """One traced transform; :meth:`apply` it to each micro-batch, or once to a
    streaming DataFrame."""

    def __init__(
        self,
        faro: FaroSpark,
        operator_id: str,
        operator_type: OperatorType,
        config: FaroConfig,
        fn: Transform,
    ):
        if not operator_id:
            raise ValueError("operator_id must be a non-empty string such as 'order-agg-window'")
        self.faro = faro
        self.operator_id = operator_id
        self.operator_type = operator_type
        self.config = config
        self.fn = fn
        self.recorder = OperatorRecorder(
            faro.pipeline_id, operator_id, operator_type, config, _DriverSink(faro)
        )
        self._entity_specs = {
            side: {n: s for n, s in config.feature_specs.items()
                   if s.emits_entities and s.on == side}
            for side in ("input", "output")
        }  # fmt: skip
        for specs in self._entity_specs.values():
            for name, spec in specs.items():
                for extractor in (spec.entity_key, spec.feature_value):
                    if not isinstance(extractor, (str, Column)):
                        raise ValueError(
                            f"feature {name!r}: in faro.spark, entity_key and feature_value "
                            "are column names or Column expressions, not Python functions"
                        )
        self._pending: list[_Pending] = []
        self._observed: list[_Observed] = []
        self._columns: dict[str, Column] = {}
        self._warned_untimed = False

    def apply(self, batch_df: DataFrame, batch_id: int | None = None) -> DataFrame:
        """Exactly what ``fn(batch_df)`` returns (observed, so Spark counts it).

        ``batch_df`` is a micro-batch inside ``foreachBatch``, or a streaming
        DataFrame: then call it once, while defining the query, and each of the
        query's micro-batches is reported from its progress."""
        if batch_df.isStreaming:
            return self._apply_stream(batch_df)
        self.complete()
        try:
            watermark, query_id = self._watermark(batch_df)
            observed_in = Observation()
            in_schema = batch_df.schema  # one round trip; column lookups reuse it
            traced_in = batch_df.observe(observed_in, *self._input_metrics(in_schema, watermark))
            self._entities(batch_df, in_schema, "input")
        except Exception as exc:
            self.faro.failures.record(f"{self.operator_id}: preparing the trace failed", exc)
            return self.fn(batch_df)
        out = self.fn(traced_in)
        try:
            observed_out = Observation()
            traced_out, out_schema, features, windowed = self._observed_output(out, observed_out)
            persisted = None
            if self._entity_specs["output"]:
                persisted = traced_out.persist()
                self._entities(persisted, out_schema, "output")
                traced_out = persisted
        except Exception as exc:
            self.faro.failures.record(f"{self.operator_id}: observing the output failed", exc)
            return out
        with self.faro._lock:
            self._pending.append(_Pending(
                batch_id, query_id, watermark, observed_in, observed_out, persisted, features,
                windowed,
            ))  # fmt: skip
        return traced_out

    def _apply_stream(self, df: DataFrame) -> DataFrame:
        """``fn(df)`` for a streaming ``df``, with the same two observations. Spark
        computes them in every micro-batch and reports them with the batch's progress,
        where :meth:`report_stream` reads them; late rows are those the query's
        stateful operators dropped behind the watermark, as the progress counts them.
        """
        self.faro._needs_listener(
            f"{self.operator_id}: a streaming DataFrame's metrics arrive with its query's progress"
        )
        entities = sorted(n for specs in self._entity_specs.values() for n in specs)
        if entities:
            raise ValueError(
                f"{self.operator_id}: features {entities} capture entity values, which "
                "need each micro-batch's rows: trace the transform inside foreachBatch, "
                "or leave out entity_key and feature_value to keep their statistics only"
            )
        name = f"faro:{self.faro.pipeline_id}:{self.operator_id}:{next(_stream_ids)}"
        try:
            traced_in = df.observe(f"{name}:in", *self._input_metrics(df.schema, None))
        except Exception as exc:
            self.faro.failures.record(f"{self.operator_id}: preparing the trace failed", exc)
            return self.fn(df)
        out = self.fn(traced_in)
        try:
            traced_out, _, features, windowed = self._observed_output(out, f"{name}:out")
            observed = _Observed(f"{name}:in", f"{name}:out", features, windowed)
        except Exception as exc:
            self.faro.failures.record(f"{self.operator_id}: observing the output failed", exc)
            return out
        with self.faro._lock:
            self._observed.append(observed)
            self.faro._streamed = df.sparkSession
        return traced_out

    def report_stream(self, progress: QueryProgress) -> None:
        """Reports the micro-batch ``progress`` describes, for each streaming DataFrame
        of its query that this trace observed."""
        with self.faro._lock:
            for o in self._observed:
                out = progress.observed.get(o.name_out)
                if out is not None:
                    inputs = progress.observed.get(o.name_in)
                    late = progress.late_rows if inputs is not None else None
                    self._emit(
                        inputs, out, o.features, o.windowed, late, progress.watermark,
                        progress.batch_id,
                    )  # fmt: skip

    def complete(self, query_id: str | None = None, batch_id: int | None = None) -> None:
        """Reports pending batches whose write has finished (up to ``batch_id`` of
        ``query_id`` when given)."""
        with self.faro._lock:
            keep = []
            for p in self._pending:
                mine = query_id is None or p.query_id in (None, query_id)
                due = batch_id is None or p.batch_id is None or p.batch_id <= batch_id
                if mine and due and _done(p.observed_out):
                    self._report(p)
                else:
                    keep.append(p)
            self._pending = keep

    def abandon(self) -> None:
        """Drops batches whose output was never computed (the user never wrote it)."""
        with self.faro._lock:
            for p in self._pending:
                self.faro.failures.record(
                    f"{self.operator_id}: batch {p.batch_id} was never written; not reported"
                )
                if p.persisted is not None:
                    p.persisted.unpersist()
            self._pending = []

    # -- building the observations ---------------------------------------------------

    def _watermark(self, df: DataFrame) -> tuple[int | None, str | None]:
        """The watermark this micro-batch runs with, as the query's progress will
        report it; the listener's latest where the JVM is out of reach."""
        query_id = None
        try:
            query_id = df.sparkSession.sparkContext.getLocalProperty("sql.streaming.queryId")
            # foreachBatch hands over a clone of the session, whose query manager does
            # not know the query; the session that started it does.
            for session in (df.sparkSession, SparkSession.builder.getOrCreate()):
                query = session.streams.get(query_id or "")
                if query is not None:
                    execution = query._jsq.streamingQuery().lastExecution()
                    ms = int(execution.offsetSeqMetadata().batchWatermarkMs())
                    return (ms or None), query_id
            raise LookupError(f"query {query_id} not found")
        except Exception:
            latest = self.faro.listener.latest(query_id) if self.faro.listener else None
            return (latest.watermark if latest else None), query_id

    def _event_time_ms(self, schema: StructType) -> str | None:
        """The input's event time in epoch ms, as Spark SQL text."""
        name = self.faro.event_time_col
        if name is None or name not in schema.names:
            return None
        if isinstance(schema[name].dataType, (TimestampType, TimestampNTZType)):
            return f"unix_millis({_quote(name)})"
        return f"CAST({_quote(name)} AS BIGINT)"

    def _parsed(self, sql: Iterable[str]) -> list[Column]:
        """Columns for SQL expressions, each parsed once per trace. Building a Column
        function by function costs a py4j round trip per call (the output statistics
        took ~40 ms of driver time per batch that way); parsing costs one per
        expression, and a parsed Column serves every later batch."""
        columns = []
        for text in sql:
            column = self._columns.get(text)
            if column is None:
                column = self._columns[text] = F.expr(text)
            columns.append(column)
        return columns

    def _input_metrics(self, schema: StructType, watermark: int | None) -> list[Column]:
        sql = ["count(1) AS `rows`"]
        et = self._event_time_ms(schema)
        late = []
        if et is not None:
            sql += [f"min({et}) AS et_min", f"max({et}) AS et_max"]
            if watermark is not None:  # changes every batch: parsed, not kept
                late.append(F.expr(_late_sql(et, watermark)))
        return self._parsed(sql) + late

    def _observed_output(
        self, out: DataFrame, observation: Observation | str
    ) -> tuple[DataFrame, StructType, list[tuple[str, bool]], bool]:
        """``out`` with the output's observation (an Observation in ``foreachBatch``, a
        name in a streaming query), its schema, its features and whether it holds
        the window column."""
        schema = out.schema  # one round trip; column lookups reuse it
        features = self._output_features(schema)
        windowed = self._has_window(schema)
        traced = out.observe(observation, *self._output_metrics(windowed, features))
        return traced, schema, features, windowed

    def _output_features(self, schema: StructType) -> list[tuple[str, bool]]:
        """(name, numeric) of the output columns that are features."""
        found = []
        for name in self.config.feature_names:
            if name in schema.names:
                numeric = isinstance(schema[name].dataType, (NumericType, BooleanType))
                found.append((name, numeric))
        return found

    def _has_window(self, schema: StructType) -> bool:
        return self.faro.window_col is not None and self.faro.window_col in schema.names

    def _output_metrics(self, windowed: bool, features: list[tuple[str, bool]]) -> list[Column]:
        sql = ["count(1) AS `rows`"]
        if windowed:
            window = _quote(self.faro.window_col)  # type: ignore[arg-type]
            sql += [
                f"min(unix_millis({window}.`start`)) AS window_start",
                f"max(unix_millis({window}.`end`)) AS window_end",
            ]
        for i, (name, numeric) in enumerate(features):
            if not numeric:
                sql.append(f"count({_quote(name)}) AS f{i}_values")
                continue
            v = f"nanvl(CAST({_quote(name)} AS DOUBLE), CAST(NULL AS DOUBLE))"
            sql += [
                f"count({v}) AS f{i}_values",
                f"sum({v}) AS f{i}_sum",
                f"sum({v} * {v}) AS f{i}_sum_sq",
                f"min({v}) AS f{i}_min",
                f"max({v}) AS f{i}_max",
            ]
        return self._parsed(sql)

    def _entities(
        self, df: DataFrame, schema: StructType, side: Literal["input", "output"]
    ) -> None:
        specs = self._entity_specs[side]
        if not specs:
            return
        columns: list[Column] = []
        aliased: dict[str, FaroFeatureConfig] = {}
        sampled: list[str] | None = []  # None: some feature keeps every row
        for i, (name, spec) in enumerate(specs.items()):
            key, value = _column(spec.entity_key), _column(spec.feature_value)
            key_at, value_at = column_at(len(columns)), column_at(len(columns) + 1)
            columns += [key.cast("string").alias(f"_faro_k{i}"), value.alias(f"_faro_v{i}")]
            if spec.sample_rate >= 1.0 or sampled is None:
                sampled = None
            elif spec.sample_rate > 0.0:
                sampled.append(_sampled_sql(f"_faro_k{i}", spec.sample_rate))
            aliased[name] = FaroFeatureConfig(
                entity_key=key_at, feature_value=value_at,
                value_type=spec.value_type, classification=spec.classification,
                sample_rate=spec.sample_rate, on=side,
            )  # fmt: skip
        if sampled == []:  # every feature samples at rate 0: no job to run
            return
        et = self._event_time_ms(schema)
        if et is None and side == "output" and self._has_window(schema):
            # a window's result has no event time column of its own: it takes the
            # window's last millisecond, as Flink stamps window results
            et = f"unix_millis({_quote(self.faro.window_col)}.`end`) - 1"  # type: ignore[arg-type]
        event_time = None
        if et is not None:
            event_time = column_at(len(columns))
            columns += self._parsed([f"{et} AS _faro_et"])
        elif not self._warned_untimed:
            self._warned_untimed = True
            log.warning(
                "faro: %r emits ENTITY events of %s (%s) without an event time, so all of "
                "one entity's events share one trace id: name the event-time column with "
                "with_streaming_context(event_time_col=...), or window_col= for a window's "
                "results",
                self.operator_id, sorted(specs), side,
            )  # fmt: skip
        writer = EntityWriter(
            self.faro.sink_key, self.faro.pipeline_id, self.operator_id, self.operator_type,
            FaroConfig(features=aliased), self.faro.sink_factory, side, event_time,
        )  # fmt: skip
        rows = df.select(*columns)
        if sampled is not None:
            # The core's sampling hash is Spark's xxhash64: unsampled rows stay in
            # the JVM (at rate 0.1, nine in ten never cost a pickled Row). The
            # executors' recorders still decide; this only drops rows they would drop.
            [keep] = self._parsed([" OR ".join(sampled)])
            rows = rows.where(keep)
        try:
            tasks = rows.rdd
        except Exception:  # Spark Connect has no RDDs: each task commits its own writes
            writer.stage = False
            rows.foreachPartition(writer)  # type: ignore[arg-type]  # returns [] unstaged
            return
        staged = tasks.mapPartitions(writer).collect()
        if staged:
            with self.faro._lock:  # the listener's thread may be emitting to the same sink
                sink = self.faro.driver_sink()
                if isinstance(sink, StagingSink):
                    sink.commit(staged)
                else:  # its factory failed here, yet worked on the executors
                    self.faro.failures.record(
                        f"{self.operator_id}: {len(staged)} staged writes were not committed: "
                        "the driver has no sink to commit them"
                    )

    # -- reporting -------------------------------------------------------------------

    def _report(self, p: _Pending) -> None:
        inputs = _row(p.observed_in)
        late = int(inputs.get("late") or 0) if inputs is not None else None
        self._emit(
            inputs, _row(p.observed_out) or {}, p.features, p.windowed, late, p.watermark,
            p.batch_id,
        )  # fmt: skip
        if p.persisted is not None:
            p.persisted.unpersist()

    def _emit(
        self,
        inputs: dict[str, Any] | None,
        out: dict[str, Any],
        features: list[tuple[str, bool]],
        windowed: bool,
        late: int | None,
        watermark: int | None,
        batch_id: int | None,
    ) -> None:
        """One AGGREGATE event from a batch's observed metrics (``inputs`` None: the
        input's observation never ran)."""
        stats = []
        rows = int(out.get("rows") or 0)
        for i, (name, numeric) in enumerate(features):
            values = int(out.get(f"f{i}_values") or 0)
            valued = numeric and values > 0
            stats.append(FeatureStats(
                name, count=rows, null_count=rows - values,
                sum=float(out[f"f{i}_sum"]) if valued else None,
                sum_sq=float(out[f"f{i}_sum_sq"]) if valued else None,
                min=float(out[f"f{i}_min"]) if valued else None,
                max=float(out[f"f{i}_max"]) if valued else None,
            ))  # fmt: skip
        self.recorder.report(
            input_count=int(inputs.get("rows") or 0) if inputs is not None else None,
            output_count=rows,
            late_count=late,
            event_time_min=(inputs or {}).get("et_min"),
            event_time_max=(inputs or {}).get("et_max"),
            feature_stats=stats,
            watermark=watermark,
            window_start=out.get("window_start") if windowed else None,
            window_end=out.get("window_end") if windowed else None,
            batch_id=batch_id,
        )


class _DriverSink:
    """The recorder's sink: the FaroSpark's driver sink, built on first use."""

    def __init__(self, faro: FaroSpark) -> None:
        self.faro = faro

    def emit(self, event: Any) -> None:
        self.faro.driver_sink().emit(event)

    def flush(self, timeout: float | None = None) -> bool:
        return self.faro.driver_sink().flush(timeout)

    def close(self) -> None:
        pass


def _quote(name: str) -> str:
    """A column name as Spark SQL text, whatever characters it holds."""
    return "`" + name.replace("`", "``") + "`"


_DECIMAL_MS_MAX = 10**18 - 1


def _late_sql(event_time_ms: str, watermark: int) -> str:
    """Spark SQL counting rows below ``watermark``, compiled once for all batches.

    Spark writes a long literal into the Java code it generates and compiles,
    so a watermark that moves every batch compiled the observation anew each
    time (~20 ms a batch at 200,000 rows). A decimal literal is handed to that
    code as a reference instead, so the code, and Spark's cache of it, stay
    the same. DECIMAL(18,0) is held in a long, so the comparison stays cheap;
    event times are clamped into its range, which leaves every comparison with
    a watermark inside it unchanged (a Spark timestamp in ms is far inside it,
    and so is any watermark Spark computes). NULL stays NULL, never late."""
    low, high = -_DECIMAL_MS_MAX, _DECIMAL_MS_MAX
    et = event_time_ms
    clamped = f"CASE WHEN {et} < {low} THEN {low} WHEN {et} > {high} THEN {high} ELSE {et} END"
    threshold = min(max(int(watermark), low + 1), high)
    return (
        f"count_if(CAST({clamped} AS DECIMAL(18,0)) < CAST({threshold} AS DECIMAL(18,0))) AS late"
    )


def _sampled_sql(key: str, rate: float) -> str:
    """Spark SQL for :func:`faro.core.sampling.is_sampled` of a string column."""
    return f"shiftrightunsigned(xxhash64({_quote(key)}), {SAMPLE_SHIFT}) < {sample_threshold(rate)}"


def _column(extractor: Any) -> Column:
    return F.col(extractor) if isinstance(extractor, str) else extractor


def _done(observation: Observation) -> bool:
    """True once the action that fills the observation has finished (never blocks)."""
    jo = getattr(observation, "_jo", None)
    return jo is not None and bool(jo.future().isCompleted())


def _row(observation: Observation) -> dict[str, Any] | None:
    """The observed metrics; None when that part of the plan never ran; an empty
    batch (pruned by Spark's optimizer) reads as zero rows."""
    if not _done(observation):
        return None
    if observation._jo.getRow().size() == 0:  # type: ignore[union-attr]
        return {"rows": 0}
    return dict(observation.get)
