"""FaroSensor on a real Faust worker, fed and read through the test broker."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import uuid
from collections import defaultdict
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from faro import CaptureEvent, EventType, OperatorType
from faro.core.avro_codec import decode_single_object
from faro.faust import FaroSensor
from tests.faust import MIN_AMOUNT, PARTITIONS
from tests.support import new_topic, read_topic

pytestmark = [pytest.mark.faust, pytest.mark.kafka]
ROOT = Path(__file__).resolve().parents[2]
T0 = 1_780_000_000_000


def _orders(n: int) -> list[dict]:
    """Orders of 12 users, each user's on one partition in order, with known timestamps."""
    rng = random.Random(5)
    return [
        {"user": f"user-{rng.randrange(12)}", "amount": round(rng.uniform(1, 60), 2),
         "ts": T0 + i * 1000 + rng.randrange(500)}
        for i in range(n)
    ]  # fmt: skip


def _partition(user: str) -> int:
    return int(user.split("-")[1]) % PARTITIONS


def _read(bootstrap: str, topic: str, done) -> list:
    """Every message of ``topic`` until ``done(messages)`` holds (60 s at most; ``done``
    also says when the worker has died)."""
    return read_topic(bootstrap, topic, done, timeout=60)


def _events(messages: list) -> list[CaptureEvent]:
    return [decode_single_object(m.value()) for m in messages]


def _totals(events: list[CaptureEvent], operator: str) -> tuple[int, int]:
    mine = [e for e in events if e.event_type == EventType.AGGREGATE and e.operator_id == operator]
    return sum(e.input_count for e in mine), sum(e.output_count for e in mine)


def _worker(
    broker, orders_topic: str, capture: str, sink: str, log: Path, group_by: bool = False
) -> subprocess.Popen:
    env = dict(
        os.environ, BROKER=broker.bootstrap_servers, ORDERS=orders_topic, CAPTURE=capture,
        SINK=sink, APP_ID=f"faro-faust-{uuid.uuid4().hex[:8]}", DATADIR=str(log.parent / "faust"),
        GROUP_BY="1" if group_by else "",
    )  # fmt: skip
    return subprocess.Popen(
        [sys.executable, "-m", "tests.faust.app", "worker", "-l", "warn"],
        cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
    )  # fmt: skip


def _produce(bootstrap: str, topic: str, orders: list[dict]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for o in orders:
        producer.produce(topic, json.dumps(o).encode(), key=o["user"].encode(),
                         partition=_partition(o["user"]), timestamp=o["ts"])  # fmt: skip
    assert producer.flush(10) == 0


def _run(
    broker, worker: subprocess.Popen, capture: str, log: Path,
    expected: dict[str, tuple[int, int]], entities: int,
) -> list[CaptureEvent]:
    """Lets the worker run until the sensor has reported ``expected`` (inputs and
    outputs per operator), stops it (its last flush), and returns every event."""

    def reported(ms: list) -> bool:
        events = _events(ms)
        return all(_totals(events, op) == counts for op, counts in expected.items()) and \
            sum(e.event_type == EventType.ENTITY for e in events) == entities  # fmt: skip

    try:
        _read(broker.bootstrap_servers, capture, lambda ms: worker.poll() is not None
              or reported(ms))  # fmt: skip
    finally:
        _stop(worker, log)
    # what the sensor sent as it stopped, too
    return _events(_read(broker.bootstrap_servers, capture, reported))


def _stop(worker: subprocess.Popen, log: Path) -> None:
    worker.send_signal(signal.SIGTERM)
    try:
        worker.wait(30)
    except subprocess.TimeoutExpired:
        worker.kill()
        raise AssertionError(f"the Faust worker did not stop: {log.read_text()[-3000:]}") from None


def _started(broker, tmp_path: Path, orders: list[dict], group_by: bool = False):
    """Topics for the orders and the capture events, the orders sent, and the worker
    started: (orders topic, capture topic, worker log, worker)."""
    orders_topic = new_topic(broker.bootstrap_servers, PARTITIONS)
    capture = new_topic(broker.bootstrap_servers, 1)
    _produce(broker.bootstrap_servers, orders_topic, orders)
    log = tmp_path / "worker.log"
    worker = _worker(broker, orders_topic, capture, "kafka", log, group_by)
    return orders_topic, capture, log, worker


def test_the_agent_and_its_table_are_reported_as_ground_truth(broker, tmp_path) -> None:
    orders = _orders(300)
    kept = [o for o in orders if o["amount"] >= MIN_AMOUNT]
    _, capture, log, worker = _started(broker, tmp_path, orders)
    expected = {"score": (len(orders), len(kept)), "purchase_total": (len(kept), len(kept))}
    events = _run(broker, worker, capture, log, expected, len(kept))
    assert _totals(events, "score") == expected["score"], log.read_text()[-3000:]

    # the table: each kept order is one write, by the partition of its user
    running: dict[str, float] = defaultdict(float)
    writes = []
    for o in kept:
        running[o["user"]] += o["amount"]
        writes.append((o["user"], round(running[o["user"]], 6), o["ts"]))
    assert _totals(events, "purchase_total") == (len(kept), len(kept))
    entities = [e for e in events if e.event_type == EventType.ENTITY]
    assert sorted((e.entity_id, round(e.feature_value, 6), e.event_time) for e in entities) == \
        sorted(writes)  # fmt: skip
    tables = [e for e in events if e.operator_id == "purchase_total"
              and e.event_type == EventType.AGGREGATE]  # fmt: skip
    by_partition: dict[int, int] = defaultdict(int)
    for o in kept:
        by_partition[_partition(o["user"])] += 1
    subtasks: dict[int, int] = defaultdict(int)
    for e in tables:
        subtasks[e.subtask_index] += e.input_count
    assert subtasks == by_partition
    assert {e.operator_type for e in tables} == {OperatorType.AGG}

    agent = [e for e in events if e.operator_id == "score" and e.event_type == EventType.AGGREGATE]
    assert {(e.operator_type, e.subtask_index) for e in agent} == {(OperatorType.PROCESS, 0)}
    assert min(e.event_time_min for e in agent) == min(o["ts"] for o in orders)
    assert max(e.event_time_max for e in agent) == max(o["ts"] for o in orders)
    assert all(e.late_count is None and e.watermark is None for e in agent)
    for feature, seen in (("amount", orders), ("kept_amount", kept)):  # input, output
        stats = [s for e in agent for s in e.feature_stats if s.name == feature]
        assert sum(s.count for s in stats) == len(seen)
        assert sum(s.sum for s in stats) == pytest.approx(sum(o["amount"] for o in seen))


def test_a_repartitioned_stream_is_an_operator_named_after_its_topic(broker, tmp_path) -> None:
    """group_by sends the agent's events through a topic of Faust's and reads them
    back in a second stream: each stream is counted once, under its own name."""
    orders = _orders(200)
    kept = [o for o in orders if o["amount"] >= MIN_AMOUNT]
    orders_topic, capture, log, worker = _started(broker, tmp_path, orders, group_by=True)
    repartitioned = f"score-{orders_topic}-user-repartition"
    expected = {
        # group_by moves the stream's processors (the filter) to the stream it reads
        # back, so the agent's own stream hands every order on
        "score": (len(orders), len(orders)),
        repartitioned: (len(orders), len(kept)),
        "purchase_total": (len(kept), len(kept)),
    }
    events = _run(broker, worker, capture, log, expected, len(kept))
    assert {e.operator_id for e in events} == set(expected)
    assert {op: _totals(events, op) for op in expected} == expected, log.read_text()[-3000:]


def test_a_failing_sink_leaves_the_pipeline_computing_the_same(broker, tmp_path) -> None:
    orders = _orders(200)
    orders_topic = new_topic(broker.bootstrap_servers, PARTITIONS)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
    results = f"{orders_topic}-totals"  # where the agent sends each new total
    admin.create_topics([NewTopic(results, num_partitions=PARTITIONS)])[results].result(10)
    _produce(broker.bootstrap_servers, orders_topic, orders)
    log = tmp_path / "worker.log"
    worker = _worker(broker, orders_topic, "unused", "failing", log)
    kept = [o for o in orders if o["amount"] >= MIN_AMOUNT]
    try:
        out = _read(broker.bootstrap_servers, results,
                    lambda ms: worker.poll() is not None or len(ms) >= len(kept))  # fmt: skip
    finally:
        _stop(worker, log)
    running: dict[str, float] = defaultdict(float)
    expected = []
    for o in kept:
        running[o["user"]] += o["amount"]
        expected.append((o["user"], round(running[o["user"]], 6)))
    got = [json.loads(m.value()) for m in out]
    assert sorted((t["user"], round(t["total"], 6)) for t in got) == sorted(expected), \
        log.read_text()[-3000:]  # fmt: skip
    assert "the capture destination is down" in log.read_text()  # logged, not raised


def test_a_config_that_is_not_a_faro_config_is_refused() -> None:
    with pytest.raises(ValueError, match=r"configs\['score'\] must be a FaroConfig"):
        FaroSensor("p", lambda: None, {"score": {"features": ["amount"]}})  # type: ignore[dict-item]
