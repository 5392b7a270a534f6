"""The executors' sinks: kept per worker process, flushed per task (a staging sink
stages, and the driver commits), rebuilt after a fault."""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from deltalake import DeltaTable

from faro import DeltaCaptureEventSink, FaroConfig, FaroFeatureConfig, OperatorType
from faro.core.failures import FailureLog
from faro.spark import FaroSpark, executor
from tests.spark.conftest import SCHEMA
from tests.spark.test_tracer import BATCHES, read_delta, run
from tests.support import ListSink

pytestmark = pytest.mark.spark


@pytest.fixture(autouse=True)
def no_kept_sinks() -> Iterator[None]:
    """Each test starts and ends with this process keeping no sink."""
    executor._sinks.clear()
    yield
    executor._sinks.clear()


class Flaky(ListSink):
    def __init__(self, delivers: bool) -> None:
        super().__init__()
        self.delivers = delivers

    def flush(self, timeout: float | None = None) -> bool:
        return self.delivers


def test_a_process_keeps_one_sink_per_key_and_drops_one_that_cannot_flush() -> None:
    failures = FailureLog("test", logging.getLogger("test"))
    built: list[Flaky] = []

    def factory(delivers: bool):
        return lambda: built.append(Flaky(delivers)) or built[-1]

    first = executor.task_sink("k-ok", factory(True), failures)
    executor.release("k-ok", first, failures)
    assert executor.task_sink("k-ok", factory(True), failures) is first and not first.closed

    broken = executor.task_sink("k-bad", factory(False), failures)
    executor.release("k-bad", broken, failures)
    assert broken.closed
    assert executor.task_sink("k-bad", factory(False), failures) is not broken
    assert len(built) == 3


def test_the_least_recently_used_sink_is_closed_beyond_the_limit() -> None:
    failures = FailureLog("test", logging.getLogger("test"))
    sinks = [executor.task_sink(f"lru-{i}", ListSink, failures) for i in range(executor._KEPT)]
    executor.task_sink("lru-0", ListSink, failures)  # used again: now the most recent
    executor.task_sink("lru-new", ListSink, failures)
    assert [s.closed for s in sinks] == [False, True] + [False] * (executor._KEPT - 2)


def _counting_delta(table: str, builds: str) -> DeltaCaptureEventSink:
    with open(builds, "a") as f:
        f.write("built\n")
    return DeltaCaptureEventSink(table)


def test_executors_build_a_sink_per_worker_process_not_per_task(spark, tmp_path: Path) -> None:
    table, builds = tmp_path / "events", tmp_path / "builds"
    faro = FaroSpark("orders", functools.partial(_counting_delta, str(table), str(builds)))
    faro.with_streaming_context(event_time_col="event_time")
    config = FaroConfig(features={
        "amount": FaroFeatureConfig(entity_key="user_id", feature_value="amount"),
    })  # fmt: skip
    _, traced, plain = run(spark, tmp_path, faro, config)
    faro.close()
    assert traced == plain
    entities = [e for e in read_delta(table) if e["event_type"] == "ENTITY"]
    assert sorted((e["entity_id"], e["feature_value"]) for e in entities) == sorted(
        (u, a) for rows in BATCHES for u, a, _ in rows
    )
    # Each batch's ENTITY pass runs at least one task; local[2] has at most two
    # Python workers, so building per task would show here as one build per batch.
    worker_builds = builds.read_text().count("built") - 1  # one is the driver's sink
    assert 1 <= worker_builds <= 2 < len(BATCHES)


def test_a_batch_written_by_many_tasks_is_one_delta_commit(spark, tmp_path: Path) -> None:
    # Four tasks stage their ENTITY files; the driver commits them together.
    rows = [(f"user-{i}", float(i), dt.datetime(2026, 11, 23, 0, 0, i % 60)) for i in range(400)]
    batch = spark.createDataFrame(rows, SCHEMA).repartition(4)
    table = tmp_path / "events"
    faro = FaroSpark("orders", DeltaCaptureEventSink.factory(str(table)))
    faro.with_streaming_context(event_time_col="event_time")
    config = FaroConfig(features={
        "amount": FaroFeatureConfig(entity_key="user_id", feature_value="amount"),
    })  # fmt: skip
    trace = faro.trace(
        "orders-by-user", OperatorType.AGG, config, lambda df: df.groupBy("user_id").count()
    )
    assert trace.apply(batch, 0).count() == len(rows)
    log = DeltaTable(str(table))
    assert log.version() == 1  # created by the first task to stage, then one commit
    assert len(log.file_uris()) == 4
    entities = read_delta(table)
    assert sorted((e["entity_id"], e["feature_value"]) for e in entities) == sorted(
        (u, a) for u, a, _ in rows
    )
    faro.close()  # the batch's AGGREGATE event, appended by the driver's own sink
    assert DeltaTable(str(table)).version() == 2


def test_a_writer_told_not_to_stage_commits_its_own_writes(tmp_path: Path) -> None:
    # Spark Connect has no RDD to return staged files through; there each task commits.
    from pyspark.sql import Row

    from faro.core.events import OperatorType as Op
    from faro.spark.executor import EntityWriter, column_at

    table = str(tmp_path / "events")
    config = FaroConfig(features={
        "amount": FaroFeatureConfig(entity_key=column_at(0), feature_value=column_at(1)),
    })  # fmt: skip
    rows = [Row(f"user-{i}", float(i)) for i in range(30)]

    def writer(key: str) -> EntityWriter:
        factory = DeltaCaptureEventSink.factory(table)
        return EntityWriter(key, "orders", "op", Op.MAP, config, factory, "input", None)

    staged = writer("staging")(iter(rows))
    assert sum(file["rows"] for file in staged) == 30 and read_delta(tmp_path / "events") == []
    direct = writer("direct")
    direct.stage = False
    assert direct(iter(rows)) == []
    entities = read_delta(tmp_path / "events")
    assert sorted(e["entity_id"] for e in entities) == sorted(r[0] for r in rows)
