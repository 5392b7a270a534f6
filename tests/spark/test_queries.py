"""FaroSpark.trace_queries: each streaming query reported from its progress alone."""

from __future__ import annotations

import pytest
from pyspark.sql import DataFrame

from faro import OperatorType
from faro.spark import FaroSpark, FaroStreamingListener, QueryProgress
from tests.spark.conftest import stream, write_batches
from tests.spark.test_tracer import STATEFUL, aggregate, stateful_truth
from tests.support import ListSink

pytestmark = pytest.mark.spark


def test_each_named_query_reports_its_batches_and_no_other_query_does(spark, tmp_path):
    listener = FaroStreamingListener()
    spark.streams.addListener(listener)
    progress: dict[str, dict[int, QueryProgress]] = {}
    listener.subscribe(lambda p: progress.setdefault(p.name, {}).__setitem__(p.batch_id, p))
    sink = ListSink()
    faro = FaroSpark("orders", lambda: sink).with_streaming_context(listener=listener)
    faro.trace_queries("orders_windows")
    write_batches(tmp_path / "source", STATEFUL)

    def start(name: str, out: DataFrame, mode: str):
        return (
            out.writeStream.format("memory").queryName(name).outputMode(mode)
            .trigger(availableNow=True)
            .option("checkpointLocation", str(tmp_path / f"checkpoint-{name}"))
            .start()
        )  # fmt: skip

    # the stateful query is reported; a second query, not named, is not
    queries = [
        start("orders_windows", aggregate(stream(spark, tmp_path / "source", "10 seconds")),
              "append"),
        start("orders_copy", stream(spark, tmp_path / "source", "10 seconds"), "append"),
    ]  # fmt: skip
    for query in queries:
        query.awaitTermination(120)
        assert query.exception() is None
    faro.close()  # drains the listener bus: every batch is reported
    spark.streams.removeListener(listener)

    assert {e.operator_id for e in sink.events} == {"orders_windows"}
    assert progress["orders_copy"]  # that query did run
    batch_ids = sorted(progress["orders_windows"])
    truth = stateful_truth(batch_ids)
    events = sorted(sink.events, key=lambda e: e.batch_id)
    assert [e.batch_id for e in events] == batch_ids
    for event in events:
        rows = truth[event.batch_id]["rows"]
        times = [t for _, _, t in rows]
        assert event.operator_type == OperatorType.SOURCE and event.pipeline_id == "orders"
        assert event.input_count == event.output_count == len(rows)
        assert event.late_count == truth[event.batch_id]["late"]
        assert event.watermark == truth[event.batch_id]["watermark"]
        assert (event.event_time_min, event.event_time_max) == (
            (min(times), max(times)) if times else (None, None)
        )
        assert event.feature_stats == []
    assert sum(e.late_count for e in events) == 2


def test_unnamed_every_query_reports_and_a_stateless_one_counts_no_late_rows(spark, tmp_path):
    listener = FaroStreamingListener()
    spark.streams.addListener(listener)
    sink = ListSink()
    faro = FaroSpark("orders", lambda: sink).with_streaming_context(listener=listener)
    faro.trace_queries()
    write_batches(tmp_path / "source", STATEFUL[:2])
    query = (
        stream(spark, tmp_path / "source", "10 seconds").writeStream.format("noop")
        .trigger(availableNow=True)
        .option("checkpointLocation", str(tmp_path / "checkpoint"))
        .start()
    )  # fmt: skip
    query.awaitTermination(120)
    faro.close()
    spark.streams.removeListener(listener)
    assert [(e.operator_id, e.batch_id, e.input_count, e.late_count) for e in sink.events] == [
        (str(query.id), b, len(rows), None) for b, rows in enumerate(STATEFUL[:2])
    ]


def test_trace_queries_needs_the_listener():
    with pytest.raises(ValueError, match="FaroStreamingListener"):
        FaroSpark("orders", ListSink).trace_queries()
