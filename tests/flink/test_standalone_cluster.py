"""The order job submitted with `flink run -py` to the wheel's standalone cluster."""

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyflink.common import Types
from pyflink.datastream import StreamExecutionEnvironment

from faro._dev.broker import LocalBroker, free_port
from faro._dev.flink_cluster import FlinkCluster
from faro.core.avro_codec import decode_single_object
from faro.core.events import CaptureEvent
from tests.support import read_topic

pytestmark = [pytest.mark.flink, pytest.mark.kafka]

JOBS = Path(__file__).resolve().parents[2] / "jobs"


def _run_a_local_job_here() -> None:
    """Leaves PyFlink's loopback server for local jobs' workers in this process, as
    the in-process tests before these do in a full run, before the cluster starts
    from here."""
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_python_executable(sys.executable)
    with env.from_collection([1, 2], Types.LONG()).map(lambda v: v, Types.LONG()) \
            .execute_and_collect() as results:  # fmt: skip
        assert sorted(results) == [1, 2]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FlinkCluster]:
    _run_a_local_job_here()
    c = FlinkCluster(tmp_path_factory.mktemp("flink"), rest_port=free_port())
    c.up()
    try:
        yield c
    finally:
        c.down()


def _read_topic(bootstrap: str, topic: str, until: int) -> list[CaptureEvent]:
    """The topic's events, once their inputs add up to ``until``."""

    def events(messages: list) -> list[CaptureEvent]:
        return [decode_single_object(m.value()) for m in messages]

    messages = read_topic(
        bootstrap, topic, lambda ms: sum(e.input_count or 0 for e in events(ms)) >= until
    )
    return events(messages)


def test_order_job_on_the_cluster_delivers_its_events_to_kafka(
    cluster, broker: LocalBroker
) -> None:
    sys.path.insert(0, str(JOBS))
    from flink_order_pipeline import MERCHANTS, MIN_AMOUNT, make_order

    records = 5000
    code = cluster.submit(
        JOBS / "flink_order_pipeline.py",
        ["--records", str(records), "--window-seconds", "1", "--sink", "async-kafka",
         "--bootstrap-servers", broker.bootstrap_servers, "--topic", "cluster-orders",
         "--late-every", "0"],
    )  # fmt: skip
    assert code == 0
    amounts = [make_order(i, 0)[1] for i in range(records)]
    valid = [a for a in amounts if a >= MIN_AMOUNT]
    events = _read_topic(broker.bootstrap_servers, "cluster-orders", until=records + len(valid))
    assert all(e.pipeline_id == "order-pipeline" for e in events)
    kept = [e for e in events if e.operator_id == "valid-orders"]
    assert sum(e.input_count for e in kept) == records
    assert sum(e.output_count for e in kept) == len(valid)
    windows = [e for e in events if e.operator_id == "order-agg-window"]
    assert sum(e.input_count for e in windows) == len(valid)
    assert all(e.output_count == 1 for e in windows)
    assert {e.subtask_index for e in windows} == {0, 1}
    assert len(windows) >= MERCHANTS * 5  # 5 s of event time in 1 s windows, for each merchant
    revenue = sum(s.sum for e in windows for s in e.feature_stats if s.name == "revenue_7d")
    assert revenue == pytest.approx(sum(valid), abs=0.01 * len(windows))  # outputs round to cents
    # The TaskManager ran Python workers of its own: handed this process's loopback
    # address, it ran them here instead, and its variables arrived in os.environ.
    assert os.environ.get("FLINK_CONF_DIR") != str(cluster.conf_dir)
    assert "JAVA_RUN" not in os.environ
