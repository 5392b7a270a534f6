"""The executors' sinks: kept per worker process, flushed per task, rebuilt after a fault."""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from faro import DeltaCaptureEventSink, FaroConfig, FaroFeatureConfig
from faro.core.failures import FailureLog
from faro.spark import FaroSpark, executor
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
