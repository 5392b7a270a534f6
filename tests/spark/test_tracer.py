"""FaroSpark on real Structured Streaming: every number against the test's own ground truth."""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from pathlib import Path

import pyarrow as pa
import pyspark
import pytest
from deltalake import DeltaTable, QueryBuilder
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQueryListener

from faro import (
    DataClassification,
    DeltaCaptureEventSink,
    FaroConfig,
    FaroFeatureConfig,
    OperatorType,
)
from faro.core.sampling import is_sampled
from faro.spark import FaroSpark, FaroStreamingListener, QueryProgress
from tests.spark.conftest import Batch, stream, write_batches
from tests.support import ListSink

pytestmark = pytest.mark.spark

T = 1_795_392_000_000  # 2026-11-23T00:00:00Z
S = 1000
DELAY = 10 * S
WINDOW = 10 * S

BATCHES: list[Batch] = [
    [("u0", 10.0, T + 1 * S), ("u1", 20.0, T + 4 * S), ("u2", 5.0, T + 12 * S),
     ("u3", 7.5, T + 25 * S)],
    # watermark T+15s: the rows at T+3s and T+14s are late
    [("u1", 1.0, T + 3 * S), ("u4", 2.0, T + 14 * S), ("u5", 3.0, T + 31 * S),
     ("u0", 4.0, T + 47 * S), ("u6", None, T + 48 * S)],
    # watermark T+37s: the row at T+36s is late
    [("u2", 8.0, T + 36 * S), ("u7", 9.0, T + 52 * S), ("u8", 6.5, T + 55 * S)],
    [("u9", 100.0, T + 70 * S)],
]  # fmt: skip


def aggregate(df: DataFrame) -> DataFrame:
    return df.groupBy(F.window("event_time", "10 seconds")).agg(
        F.count("*").alias("order_count"), F.sum("amount").alias("revenue")
    )


def expected_watermarks() -> list[int | None]:
    """Spark's rule: max(previous, max event time of earlier batches - delay); none at first."""
    marks: list[int | None] = [None]
    for rows in BATCHES[:-1]:
        candidate = max(t for _, _, t in rows) - DELAY
        marks.append(max(candidate, marks[-1] or candidate))
    return marks


def run(spark, tmp_path: Path, faro: FaroSpark, config: FaroConfig, listener=None,
        batches: list[Batch] = BATCHES):  # fmt: skip
    source = tmp_path / "source"
    write_batches(source, batches)
    trace = faro.trace("order-agg-window", OperatorType.AGG, config, aggregate)
    traced, plain = {}, {}

    def process(batch_df: DataFrame, batch_id: int) -> None:
        out = trace.apply(batch_df, batch_id)
        traced[batch_id] = sorted(tuple(r) for r in out.collect())  # the user's own write
        plain[batch_id] = sorted(tuple(r) for r in aggregate(batch_df).collect())

    query = (
        stream(spark, source, "10 seconds")
        .writeStream.foreachBatch(process)
        .trigger(availableNow=True)
        .option("checkpointLocation", str(tmp_path / "checkpoint"))
        .start()
    )
    query.awaitTermination(120)
    assert query.exception() is None
    return query, traced, plain


def read_delta(path: Path) -> list[dict]:
    reader = (
        QueryBuilder().register("events", DeltaTable(str(path))).execute("SELECT * FROM events")
    )
    return pa.table(reader.read_all()).to_pylist()


def test_counts_watermark_results_entities_and_delta_match_ground_truth(spark, tmp_path):
    listener = FaroStreamingListener()
    spark.streams.addListener(listener)
    progress: dict[int, QueryProgress] = {}
    listener.subscribe(lambda p: progress.__setitem__(p.batch_id, p))
    table = tmp_path / "capture-events"
    faro = FaroSpark("orders", DeltaCaptureEventSink.factory(str(table))).with_streaming_context(
        event_time_col="event_time", window_col="window", listener=listener
    )
    config = FaroConfig(features={
        "order_count": None,
        "revenue": None,
        "amount": FaroFeatureConfig(entity_key="user_id", feature_value="amount", sample_rate=1.0),
        "window_revenue": FaroFeatureConfig(
            entity_key=F.col("window")["start"].cast("long"), feature_value="revenue",
            sample_rate=1.0, on="output",
        ),
    })  # fmt: skip
    query, traced, plain = run(spark, tmp_path, faro, config)
    deadline = time.monotonic() + 30
    while len(progress) < len(BATCHES) and time.monotonic() < deadline:
        time.sleep(0.1)
    faro.close()
    spark.streams.removeListener(listener)
    latest = listener.latest(str(query.id))
    assert latest is not None and latest.batch_id == len(BATCHES) - 1
    assert latest.watermark == expected_watermarks()[-1]
    assert latest.event_time_max == max(t for _, _, t in BATCHES[-1])
    assert latest.input_rows >= len(BATCHES[-1]) and latest.processed_rows_per_second > 0

    # the traced transform computes exactly what the plain one does
    assert traced == plain and len(traced) == len(BATCHES)

    events = read_delta(table)
    aggregates = sorted((e for e in events if e["event_type"] == "AGGREGATE"),
                        key=lambda e: e["batch_id"])  # fmt: skip
    assert [e["batch_id"] for e in aggregates] == list(range(len(BATCHES)))
    marks = expected_watermarks()
    for batch_id, (rows, event) in enumerate(zip(BATCHES, aggregates, strict=True)):
        times = [t for _, _, t in rows]
        windows = Counter(t // WINDOW for t in times)
        revenue = defaultdict(list)
        for _, amount, t in rows:
            if amount is not None:
                revenue[t // WINDOW].append(amount)
        assert event["input_count"] == len(rows)
        assert event["output_count"] == len(windows)
        assert event["watermark"] == marks[batch_id] == progress[batch_id].watermark
        mark = marks[batch_id]
        assert event["late_count"] == sum(1 for t in times if mark is not None and t < mark)
        assert (event["event_time_min"], event["event_time_max"]) == (min(times), max(times))
        assert event["window_start"] == min(windows) * WINDOW
        assert event["window_end"] == (max(windows) + 1) * WINDOW
        stats = {s["name"]: s for s in event["feature_stats"]}
        assert set(stats) == {"order_count", "revenue"}
        assert stats["order_count"]["count"] == len(windows)
        assert stats["order_count"]["sum"] == len(rows)
        assert stats["order_count"]["max"] == max(windows.values())
        sums = [sum(revenue[w]) for w in windows if revenue[w]]
        assert stats["revenue"]["null_count"] == len(windows) - len(sums)
        assert stats["revenue"]["sum"] == pytest.approx(sum(sums))
        assert stats["revenue"]["sum_sq"] == pytest.approx(sum(x * x for x in sums))
        assert event["operator_id"] == "order-agg-window" and event["pipeline_id"] == "orders"

    # ENTITY events: one per input row (amount) and one per output row (window_revenue)
    entities = [e for e in events if e["event_type"] == "ENTITY"]
    amounts = sorted((e["entity_id"], e["feature_value"], e["event_time"])
                     for e in entities if e["feature_name"] == "amount")  # fmt: skip
    truth = sorted((u, a, t) for rows in BATCHES for u, a, t in rows)
    assert amounts == truth
    windowed = sorted((e["entity_id"], e["feature_value"], e["event_time"])
                      for e in entities if e["feature_name"] == "window_revenue")  # fmt: skip
    # a window's result has the window's last millisecond as its event time
    assert windowed == sorted(
        (str(int(r[0]["start"].timestamp())), r[2], int(r[0]["end"].timestamp() * 1000) - 1)
        for rows in traced.values() for r in rows
    )  # fmt: skip
    assert len(events) == len(BATCHES) + len(amounts) + len(windowed)
    assert len({e["event_id"] for e in events}) == len(events)


def test_personal_features_never_leave_as_entity_events(spark, tmp_path):
    table = tmp_path / "capture-events"
    faro = FaroSpark("orders", DeltaCaptureEventSink.factory(str(table)))
    faro.with_streaming_context(event_time_col="event_time")
    config = FaroConfig(features={
        "amount": FaroFeatureConfig(entity_key="user_id", feature_value="amount",
                                    sample_rate=1.0, classification=DataClassification.PERSONAL),
    })  # fmt: skip
    _, traced, plain = run(spark, tmp_path, faro, config)
    faro.close()
    assert traced == plain
    events = read_delta(table)
    assert sorted(e["input_count"] for e in events) == sorted(len(rows) for rows in BATCHES)
    assert all(e["event_type"] == "AGGREGATE" for e in events)


def test_entities_dropped_in_the_jvm_are_exactly_the_ones_the_core_does_not_sample(spark, tmp_path):
    # Spark filters unsampled rows with xxhash64 before Python sees them; what
    # arrives must be exactly the rows whose user the core's is_sampled keeps.
    batches: list[Batch] = [
        [(f"user-{b}-{i}", float(i), T + b * 5000 + i) for i in range(2500)] for b in range(2)
    ]
    table = tmp_path / "capture-events"
    faro = FaroSpark("orders", DeltaCaptureEventSink.factory(str(table)))
    faro.with_streaming_context(event_time_col="event_time")
    config = FaroConfig(features={
        "amount": FaroFeatureConfig(entity_key="user_id", feature_value="amount",
                                    sample_rate=0.1),
        "never": FaroFeatureConfig(entity_key="user_id", feature_value="amount",
                                   sample_rate=0.0),
    })  # fmt: skip
    _, traced, plain = run(spark, tmp_path, faro, config, batches=batches)
    faro.close()
    assert traced == plain
    entities = [e for e in read_delta(table) if e["event_type"] == "ENTITY"]
    expected = sorted((u, a) for rows in batches for u, a, _ in rows if is_sampled(u, 0.1))
    assert 400 < len(expected) < 600  # 5,000 users at 0.1
    assert sorted((e["entity_id"], e["feature_value"]) for e in entities) == expected
    assert {e["feature_name"] for e in entities} == {"amount"}


def test_a_failing_sink_does_not_fail_the_query(spark, tmp_path):
    # A Delta table under a file: every append fails, on the driver and in every task.
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    faro = FaroSpark("orders", DeltaCaptureEventSink.factory(str(blocker / "t")))
    faro.with_streaming_context(event_time_col="event_time")
    config = FaroConfig(features={
        "amount": FaroFeatureConfig(entity_key="user_id", feature_value="amount"),
        "order_count": FaroFeatureConfig(entity_key="order_count", feature_value="order_count",
                                         on="output"),
    })  # fmt: skip
    _, traced, plain = run(spark, tmp_path, faro, config)
    sink = faro.driver_sink()
    faro.close()
    assert traced == plain and len(traced) == len(BATCHES)
    assert faro.failures.count == 0  # nothing failed in faro itself ...
    assert sink.dropped == len(BATCHES) and sink.emitted == 0  # ... the sink counted its drops


def test_late_rows_count_exactly_across_the_whole_range_of_long_event_times(spark):
    # The late count compares as DECIMAL(18,0), so that the code Spark compiles
    # is the same each batch; event times beyond that range must still count
    # exactly, and must not trip ANSI overflow errors.
    from faro.spark.tracer import _late_sql

    edge = 10**18
    times = [-(2**63), -edge - 5, -edge, -1, 0, T - 1, T, T + 1, edge - 1, edge, 2**63 - 1, None]
    df = spark.createDataFrame([(t,) for t in times], "t BIGINT")
    for watermark in (T, -edge + 7, edge - 2, 0):
        [row] = df.agg(F.expr(_late_sql("`t`", watermark))).collect()
        assert row["late"] == sum(1 for t in times if t is not None and t < watermark)


def test_a_new_watermark_does_not_make_spark_compile_the_late_count_again(spark):
    # A live stream has a new watermark every batch; the code Spark generates
    # for the late count must not change with it (a compile costs ~20 ms).
    from faro.spark.tracer import _late_sql

    metrics = getattr(spark.sparkContext._jvm, "org.apache.spark.metrics.source.CodegenMetrics")
    df = spark.createDataFrame([(T + i,) for i in range(100)], "t BIGINT")

    def compilations(sql: str, late: int) -> int:
        before = metrics.METRIC_COMPILATION_TIME().getCount()
        [row] = df.agg(F.expr(sql)).collect()
        assert row["late"] == late
        return metrics.METRIC_COMPILATION_TIME().getCount() - before

    # The control: a long literal Spark has not seen yet is compiled anew.
    assert compilations(f"count_if(t < {T + 37}) AS late", 37) > 0
    compilations(_late_sql("`t`", T + 5), 5)
    assert [compilations(_late_sql("`t`", T + w), w) for w in (11, 23, 64)] == [0, 0, 0]


def test_entity_events_without_an_event_time_are_warned_about_once(spark, caplog):
    """Without an event time every event of an entity would share one trace id."""
    sink = ListSink()
    rows = [("u1", 1.0, T), ("u2", 2.0, T + S)]
    df = spark.createDataFrame(
        [(u, a, t // 1000) for u, a, t in rows], "user_id string, amount double, ts long"
    )
    config = FaroConfig(features={
        "amount": FaroFeatureConfig(entity_key="user_id", feature_value="amount", sample_rate=1.0)
    })  # fmt: skip
    untimed = FaroSpark("orders", lambda: sink)
    timed = FaroSpark("orders", lambda: sink).with_streaming_context(event_time_col="ts")
    with caplog.at_level(logging.WARNING, logger="faro.spark"):
        for _ in range(2):
            untimed.trace("copy", OperatorType.MAP, config, lambda d: d).apply(df).collect()
        timed.trace("copy", OperatorType.MAP, config, lambda d: d).apply(df).collect()
    untimed.close()
    timed.close()
    [warning] = [r.getMessage() for r in caplog.records if "trace id" in r.getMessage()]
    assert "'copy'" in warning and "['amount']" in warning and "event_time_col" in warning


# A stateful query (no foreachBatch): windows kept across micro-batches, emitted in
# append mode once the watermark passes their end. Spark drops a row as late when
# its window ended at or before the watermark of the batch before (its rule since
# 3.4, which leaves a batch's own watermark for emitting windows).
STATEFUL: list[Batch] = [
    BATCHES[0],
    BATCHES[1],  # runs with watermark T+15s, drops against none: nothing is late
    # drops against T+15s: the row at T+5s (window ends T+10s) is late; T+16s is not
    BATCHES[2] + [("u9", 1.0, T + 5 * S), ("u1", 2.0, T + 16 * S)],
    # drops against T+37s: the row at T+21s (window ends T+30s) is late; T+33s is not
    [("u9", 100.0, T + 70 * S), ("u3", 3.0, T + 33 * S), ("u4", 1.0, T + 21 * S)],
]  # fmt: skip


def stateful_truth(batch_ids: list[int]) -> dict[int, dict]:
    """Per micro-batch (those Spark ran, a last one without data included): what the
    stateful window aggregation reads, drops and emits, by Spark's documented rules."""
    marks: list[int | None] = []
    open_windows: dict[int, list[float | None]] = defaultdict(list)
    truth = {}
    for b in batch_ids:
        rows = STATEFUL[b] if b < len(STATEFUL) else []
        earlier = [t for batch in STATEFUL[:b] for _, _, t in batch]
        previous = mark = marks[-1] if marks else None
        if earlier:  # the watermark never moves back
            mark = max(earlier) - DELAY if mark is None else max(mark, max(earlier) - DELAY)
        late = [r for r in rows if previous is not None
                and (r[2] // WINDOW + 1) * WINDOW <= previous]  # fmt: skip
        for row in rows:
            if row not in late:
                open_windows[row[2] // WINDOW].append(row[1])
        emitted = sorted(w for w in open_windows if mark is not None and (w + 1) * WINDOW <= mark)
        truth[b] = {
            "rows": rows, "late": len(late), "watermark": mark,
            "emitted": {w: open_windows.pop(w) for w in emitted},
        }  # fmt: skip
        marks.append(mark)
    return truth


def run_stateful(spark, tmp_path: Path, name: str, traced=None) -> list[tuple]:
    source = tmp_path / "source"
    if not source.exists():
        write_batches(source, STATEFUL)
    df = stream(spark, source, "10 seconds")
    out = traced.apply(df) if traced is not None else aggregate(df)
    query = (
        out.writeStream.format("memory").queryName(name).outputMode("append")
        .trigger(availableNow=True)
        .option("checkpointLocation", str(tmp_path / f"checkpoint-{name}"))
        .start()
    )  # fmt: skip
    query.awaitTermination(120)
    assert query.exception() is None
    return sorted(tuple(r) for r in spark.table(name).collect())


class SlowListener(StreamingQueryListener):
    """Holds up each progress report on Spark's listener bus, as a busy listener would."""

    def onQueryStarted(self, event) -> None:
        pass

    def onQueryProgress(self, event) -> None:
        time.sleep(0.5)

    def onQueryIdle(self, event) -> None:
        pass

    def onQueryTerminated(self, event) -> None:
        pass


def test_a_stateful_streaming_query_reports_each_micro_batch_from_its_progress(spark, tmp_path):
    slow, listener = SlowListener(), FaroStreamingListener()
    spark.streams.addListener(slow)  # first: the bus hands each report to it first
    spark.streams.addListener(listener)
    progress: dict[int, QueryProgress] = {}
    listener.subscribe(lambda p: progress.__setitem__(p.batch_id, p))
    sink = ListSink()
    faro = FaroSpark("orders", lambda: sink).with_streaming_context(
        event_time_col="event_time", window_col="window", listener=listener
    )
    config = FaroConfig(features=["order_count", "revenue"])
    trace = faro.trace("order-agg-window", OperatorType.AGG, config, aggregate)
    traced = run_stateful(spark, tmp_path, "stateful_traced", trace)
    faro.close()  # straight after the query: its last progress reports are still on their way
    spark.streams.removeListener(listener)
    spark.streams.removeListener(slow)
    plain = run_stateful(spark, tmp_path, "stateful_plain")

    # the traced query computes exactly what the plain one does
    assert traced == plain and traced
    events = sorted(sink.events, key=lambda e: e.batch_id)
    batch_ids = sorted(progress)
    assert batch_ids[: len(STATEFUL)] == list(range(len(STATEFUL)))
    truth = stateful_truth(batch_ids)
    assert sum(t["late"] for t in truth.values()) == 2  # the data does drop rows
    # Spark 3.5 reports no observed metrics for a batch without new data (the last one
    # here, which emits the windows the watermark closed); Spark 4 does
    reported = [b for b in batch_ids if progress[b].observed]
    assert [e.batch_id for e in events] == reported
    if int(pyspark.__version__.split(".")[0]) >= 4:
        assert reported == batch_ids
    unreported = [b for b in batch_ids if b not in reported]
    assert all(b >= len(STATEFUL) for b in unreported)
    emitted_rows = sum(len(truth[b]["emitted"]) for b in unreported)
    for event in events:
        t = truth[event.batch_id]
        times = [r[2] for r in t["rows"]]
        emitted = t["emitted"]
        emitted_rows += len(emitted)
        assert event.input_count == len(t["rows"])
        assert event.late_count == t["late"] == progress[event.batch_id].late_rows
        assert event.watermark == t["watermark"] == progress[event.batch_id].watermark
        assert event.output_count == len(emitted)
        assert (event.event_time_min, event.event_time_max) == (
            (min(times), max(times)) if times else (None, None)
        )
        assert (event.window_start, event.window_end) == (
            (min(emitted) * WINDOW, (max(emitted) + 1) * WINDOW) if emitted else (None, None)
        )
        stats = {s.name: s for s in event.feature_stats}
        assert stats["order_count"].count == len(emitted)
        assert stats["order_count"].sum == (sum(len(v) for v in emitted.values()) or None)
        sums = [sum(a for a in v if a is not None) for v in emitted.values()]
        assert stats["revenue"].sum == (pytest.approx(sum(sums)) if sums else None)
        assert event.operator_id == "order-agg-window" and event.pipeline_id == "orders"
    assert emitted_rows == len(traced)  # every window the query wrote was reported


def test_a_streaming_dataframe_needs_the_listener_and_no_entity_values(spark, tmp_path):
    write_batches(tmp_path / "source", STATEFUL[:1])
    df = stream(spark, tmp_path / "source", "10 seconds")
    no_listener = FaroSpark("orders", ListSink)
    with pytest.raises(ValueError, match="FaroStreamingListener"):
        no_listener.trace("agg", OperatorType.AGG, None, aggregate).apply(df)
    entities = FaroSpark("orders", ListSink).with_streaming_context(
        listener=FaroStreamingListener()
    )
    config = FaroConfig(features={
        "amount": FaroFeatureConfig(entity_key="user_id", feature_value="amount"),
    })  # fmt: skip
    with pytest.raises(ValueError, match=r"\['amount'\].*inside foreachBatch"):
        entities.trace("agg", OperatorType.AGG, config, aggregate).apply(df)
