"""What ``faro status`` and ``GET /store`` report, against stores built here with
known events, and against the real test broker for the lag and the dead letters."""

from __future__ import annotations

import math
import random
import time
from collections import Counter
from pathlib import Path

import pytest
from confluent_kafka import Producer
from fastapi.testclient import TestClient

from faro import CaptureEvent, EventType, KafkaCaptureEventSink, OperatorType
from faro._dev.broker import LocalBroker
from faro.api import create_app
from faro.core.windows import format_time
from faro.store import layout
from faro.store.columns import events_to_table
from faro.store.maintenance import compact
from faro.store.materializer import Materializer
from faro.store.status import describe, kafka_lag, store_status
from faro.store.writer import EventWriter
from tests.sinks.events import mixed_events
from tests.support import new_topic

DAY = 86_400_000
START = 1_790_000_000_000  # 2026-09-21


def _events(n: int, seed: int = 3) -> list[CaptureEvent]:
    """Two pipelines, both event types, processing times over four days."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        pipeline = rng.choice(["orders", "users"])
        at = START + rng.randrange(4 * DAY)
        if rng.random() < 0.3:
            out.append(CaptureEvent(
                f"a{i}", EventType.AGGREGATE, pipeline, "agg", OperatorType.WINDOW, at,
                input_count=3, output_count=1,
            ))  # fmt: skip
        else:
            out.append(CaptureEvent(
                f"e{i}", EventType.ENTITY, pipeline, "agg", OperatorType.WINDOW, at,
                entity_id=f"u{i % 40}", feature_name="f", feature_value=float(i),
            ))  # fmt: skip
    return out


def _expected(events: list[CaptureEvent], batches: list[list[CaptureEvent]]) -> dict:
    """Per (event type, pipeline): events, dates, newest, files and partitions of two
    files or more, from the events and how they were split into writes."""
    out: dict = {}
    for e in events:
        key = (e.event_type.value, e.pipeline_id)
        h = out.setdefault(key, {"events": 0, "dates": set(), "newest": 0})
        h["events"] += 1
        h["dates"].add(layout.utc_date(e.processing_time))
        h["newest"] = max(h["newest"], e.processing_time)
    files: Counter = Counter()  # (type, pipeline, date) -> files: one per write that has rows
    for batch in batches:
        files.update({(e.event_type.value, e.pipeline_id, layout.utc_date(e.processing_time))
                      for e in batch})  # fmt: skip
    for (kind, pipeline, _), n in files.items():
        h = out[(kind, pipeline)]
        h["files"] = h.get("files", 0) + n
        h["to_compact"] = h.get("to_compact", 0) + (n >= 2)
    return out


def test_each_holding_is_counted_from_the_footers(tmp_path: Path) -> None:
    events = _events(3_000)
    # the first day's events in a second write too: those partitions hold two files
    first_day = [e for e in events if e.processing_time < START + DAY]
    rest = [e for e in events if e.processing_time >= START + DAY]
    batches = [first_day[::2], first_day[1::2] + rest]
    writer = EventWriter(tmp_path, "test")
    for batch in batches:
        writer.write(events_to_table(batch))

    status = store_status(tmp_path)
    expected = _expected(events, batches)
    assert [(h.event_type, h.pipeline_id) for h in status.holdings] == sorted(expected)
    for h in status.holdings:
        want = expected[(h.event_type, h.pipeline_id)]
        assert (h.events, h.files, h.partitions_to_compact, h.newest) == (
            want["events"],
            want["files"],
            want["to_compact"],
            want["newest"],
        )
        assert (h.first_date, h.last_date) == (min(want["dates"]), max(want["dates"]))
        files = layout.event_files(tmp_path, h.event_type, h.pipeline_id)
        assert h.bytes == sum(f.stat().st_size for f in files)
    assert status.events == len(events)
    assert status.newest == max(e.processing_time for e in events)
    assert status.partitions_to_compact == sum(w["to_compact"] for w in expected.values()) > 0
    assert status.dead_letters.count == 0 and status.unfinished_changes == 0

    text = describe(status, now_ms=status.newest + 90 * 60_000)
    assert f"{len(events):,} events in {status.files} files" in text
    assert f"the newest processed {format_time(status.newest)} (1.5 h ago)" in text
    assert f"{status.partitions_to_compact} partitions hold two files or more" in text

    compact(tmp_path)
    after = store_status(tmp_path)
    assert after.events == len(events) and after.partitions_to_compact == 0
    assert after.files == sum(len(w["dates"]) for w in expected.values())
    assert "faro compact" not in describe(after)

    with TestClient(create_app(tmp_path)) as client:
        assert client.get("/store").json() == after.to_dict() | {
            "dead_letters": {"count": 0, "kinds": [], "newest": None}
        }
        before = time.time()
        gauges = _samples(client.get("/metrics").text, "faro_store_")
        assert {k: v for k, v in gauges.items() if k.startswith("faro_store_events{")} == {
            f'faro_store_events{{event_type="{h.event_type}",pipeline_id="{h.pipeline_id}"}}':
            h.events for h in after.holdings
        }  # fmt: skip
        assert gauges["faro_store_dead_letters"] == 0
        assert gauges["faro_store_partitions_to_compact"] == 0
        age = gauges["faro_store_seconds_since_newest_event"]
        assert before - age - 1 <= after.newest / 1000 <= time.time() - age + 1


def _samples(text: str, prefix: str) -> dict[str, float]:
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines() if line.startswith(prefix)
    }  # fmt: skip


def test_an_empty_store_and_a_missing_one(tmp_path: Path) -> None:
    assert "no events stored yet" in describe(store_status(tmp_path))
    with TestClient(create_app(tmp_path)) as client:
        gauges = _samples(client.get("/metrics").text, "faro_store_")
    assert math.isnan(gauges.pop("faro_store_seconds_since_newest_event"))
    assert gauges == {"faro_store_dead_letters": 0.0, "faro_store_partitions_to_compact": 0.0}
    with pytest.raises(ValueError, match=r"no store at .*--data-dir"):
        store_status(tmp_path / "typo")


def _materialize(bootstrap: str, topic: str, data_dir: Path) -> None:
    Materializer(
        bootstrap, data_dir, topic=topic, group=f"g-{topic}", max_batch_seconds=0.5,
        consumer_config={"session.timeout.ms": 6000, "heartbeat.interval.ms": 500},
    ).run(idle_exit_s=5)  # fmt: skip


@pytest.mark.kafka
def test_dead_letters_offsets_and_the_lag_on_the_broker(
    broker: LocalBroker, tmp_path: Path
) -> None:
    bootstrap = broker.bootstrap_servers
    topic = new_topic(bootstrap)
    sink = KafkaCaptureEventSink(bootstrap, topic)
    for e in mixed_events(600):
        sink.emit(e)
    assert sink.flush(30)
    producer = Producer({"bootstrap.servers": bootstrap})
    for i, payload in enumerate([b"not avro", b"nor this"]):
        producer.produce(topic, payload, partition=i)
    producer.flush(10)
    _materialize(bootstrap, topic, tmp_path)
    stored = store_status(tmp_path)
    assert stored.events == 600 and stored.dead_letters.count == 2

    # Each message from here on is a record batch of its own: tansu reports a
    # partition's end as the start of its last batch, plus one.
    producer.produce(topic, b"", partition=2)
    producer.flush(10)
    more = mixed_events(70)
    for e in more:
        e.event_id = f"more-{e.event_id}"
        sink.emit(e)
        assert sink.flush(10)
    sink.close()
    lags = kafka_lag(bootstrap, [topic], stored.progress)
    assert sum(lag.lag for lag in lags) == len(more) + 1
    for lag in lags:  # each partition: the broker's end minus what was stored through
        assert lag.stored_through == stored.progress[topic][str(lag.partition)]
        assert lag.lag == lag.end - 1 - lag.stored_through
    text = describe(stored, lags)
    assert all(f"partition {lag.partition} through offset {lag.stored_through:,}; "
               f"{lag.lag:,} more on the broker" in text for lag in lags)  # fmt: skip

    _materialize(bootstrap, topic, tmp_path)
    status = store_status(tmp_path)
    assert status.events == 600 + len(more)
    assert [lag.lag for lag in kafka_lag(bootstrap, [topic], status.progress)] == [0, 0, 0]
    dead = status.dead_letters
    assert dead.count == 3
    assert [(k.reason, k.count) for k in dead.kinds] == [
        ("not Avro single-object encoded", 2),
        ("empty message (a tombstone or a producer bug)", 1),
    ]
    assert dead.newest is not None and (dead.newest.source, dead.newest.partition) == (topic, 2)
    assert dead.newest.reason.startswith("empty message")
    assert "dead letters: 3" in describe(status)
    with pytest.raises(RuntimeError, match="does not exist"):
        kafka_lag(bootstrap, [f"{topic}-typo"], status.progress)
