import dataclasses
import json
import time
from collections import defaultdict

import pytest

from faro import (
    AsyncCaptureEventSink,
    CaptureEvent,
    EventType,
    FaroConfig,
    FaroFeatureConfig,
    KafkaCaptureEventSink,
    OperatorRecorder,
    OperatorType,
)
from faro._dev.broker import free_port
from faro.core.avro_codec import decode_single_object, encode_single_object
from faro.core.drafts import EntityEventTemplate
from tests.sinks.events import mixed_events
from tests.support import ListSink, new_topic, p99_emit_seconds, read_topic

pytestmark = pytest.mark.kafka


def _consume_all(bootstrap: str, topic: str, expected: int) -> list[tuple[int, bytes, bytes]]:
    """(partition, key, value) of every message, once ``expected`` have arrived."""
    messages = read_topic(bootstrap, topic, lambda ms: len(ms) >= expected)
    return [(m.partition(), m.key(), m.value()) for m in messages]


@pytest.mark.parametrize("wrapped", [False, True], ids=["direct", "async"])
def test_every_event_arrives_decoded_and_each_entity_stays_ordered(broker, wrapped: bool) -> None:
    topic = new_topic(broker.bootstrap_servers)
    factory = KafkaCaptureEventSink.factory(broker.bootstrap_servers, topic)
    sink = AsyncCaptureEventSink.wrap(factory, 10_000)() if wrapped else factory()
    events = mixed_events(4000)
    for e in events:
        sink.emit(e)
    assert sink.flush(20)
    sink.close()

    received = _consume_all(broker.bootstrap_servers, topic, len(events))
    decoded = [(p, decode_single_object(v)) for p, _, v in received]
    keys = {decode_single_object(v).event_id: k for _, k, v in received}
    for e in events:  # an entity's id, else the operator: both keep their events in order
        key = e.entity_id if e.entity_id is not None else f"{e.pipeline_id}/{e.operator_id}"
        assert keys[e.event_id] == key.encode()
    assert sorted((e for _, e in decoded), key=lambda e: e.event_id) == sorted(
        events, key=lambda e: e.event_id
    )
    partitions_of_entity: dict[str, set[int]] = defaultdict(set)
    order_in_partition: dict[str, list[str]] = defaultdict(list)
    for p, e in decoded:
        if e.event_type is EventType.ENTITY:
            partitions_of_entity[e.entity_id].add(p)
            order_in_partition[e.entity_id].append(e.event_id)
    assert all(len(ps) == 1 for ps in partitions_of_entity.values())
    emitted_order: dict[str, list[str]] = defaultdict(list)
    for e in events:
        if e.event_type is EventType.ENTITY:
            emitted_order[e.entity_id].append(e.event_id)
    assert order_in_partition == emitted_order


def test_recorded_entity_events_reach_kafka_unbuilt_and_equal_what_the_recorder_builds(
    broker,
) -> None:
    # Through the async sink, the recorder's ENTITY drafts are encoded without
    # building their events; the consumer must read the events a plain sink gets.
    topic = new_topic(broker.bootstrap_servers)
    factory = KafkaCaptureEventSink.factory(broker.bootstrap_servers, topic)
    sink = AsyncCaptureEventSink.wrap(factory, 10_000)()
    direct = ListSink()
    config = FaroConfig(features={"amount": FaroFeatureConfig(entity_key="user",
                                                              feature_value="amount")})  # fmt: skip
    recorders = [
        OperatorRecorder("p", "op", OperatorType.MAP, config, s, clock=lambda: 42)  # type: ignore[arg-type]
        for s in (direct, sink)
    ]
    for i in range(3000):
        for recorder in recorders:
            recorder.record_in({"user": f"u{i % 11}", "amount": i * 0.5}, 1_000 + i)
        if i % 1000 == 999:
            for recorder in recorders:
                recorder.flush()
    assert sink.flush(20)
    sink.close()

    received = _consume_all(broker.bootstrap_servers, topic, len(direct.events))
    assert len(received) == len(direct.events) == 3000 + 3
    by_id = {e.event_id: (k, e) for k, e in ((k, decode_single_object(v)) for _, k, v in received)}
    assert len(by_id) == len(received)
    for k, e in by_id.values():
        assert k == (e.entity_id or "p/op").encode()

    def key(e: CaptureEvent) -> tuple:
        return (e.event_type.value, e.entity_id or "", e.event_time or 0)

    def without_id(e: CaptureEvent) -> CaptureEvent:
        return dataclasses.replace(e, event_id="")

    got = sorted((without_id(e) for _, e in by_id.values()), key=key)
    assert got == sorted(map(without_id, direct.events), key=key)


def test_a_full_producer_queue_makes_a_batch_wait_for_space_not_drop(broker) -> None:
    # The async worker's path: with librdkafka's queue holding 5 messages, a
    # batch of events and drafts must wait for space, and every one arrives.
    topic = new_topic(broker.bootstrap_servers)
    sink = KafkaCaptureEventSink(
        broker.bootstrap_servers, topic, producer_config={"queue.buffering.max.messages": 5}
    )
    events = mixed_events(151)
    sink.emit(events.pop())  # connected, with its producer id: a new one waits ~0.5 s for it
    assert sink.flush(20)
    template = EntityEventTemplate(
        lambda: "draft", "p", "op", OperatorType.MAP, 0, ["amount"], "amount", None, 1.0
    )
    drafts = [(template, f"u{i}", float(i), 1_000 + i, 2_000) for i in range(50)]
    sink.emit_batch([*events, *drafts])
    assert sink.flush(20)
    assert (sink.emitted, sink.dropped) == (201, 0)
    sink.close()
    received = _consume_all(broker.bootstrap_servers, topic, 201)
    decoded = [decode_single_object(v) for _, _, v in received]
    assert sorted(e.event_id for e in decoded) == sorted(
        [e.event_id for e in mixed_events(151)] + ["draft"] * 50
    )
    drafted = sorted((e.entity_id, e.feature_value) for e in decoded if e.event_id == "draft")
    assert drafted == sorted((f"u{i}", float(i)) for i in range(50))


def _bytes_sent(bootstrap: str, events: list[CaptureEvent], **config: object) -> int:
    """What the producer put on the wire for ``events``, from librdkafka's statistics."""
    stats: list[dict] = []
    sink = KafkaCaptureEventSink(
        bootstrap,
        new_topic(bootstrap),
        producer_config={
            "statistics.interval.ms": 50,
            "stats_cb": lambda raw: stats.append(json.loads(raw)),
            **config,
        },
    )
    sink.emit_batch(events)
    assert sink.flush(20)
    seen = len(stats)
    deadline = time.monotonic() + 5
    while len(stats) < seen + 2 and time.monotonic() < deadline:  # one report after the flush
        sink._producer.poll(0.1)
    sink.close()
    return sum(b["txbytes"] for b in stats[-1]["brokers"].values())


def test_batches_are_compressed_unless_the_user_turns_it_off(broker) -> None:
    events = mixed_events(3000)
    payload = sum(len(encode_single_object(e)) for e in events)
    compressed = _bytes_sent(broker.bootstrap_servers, events)
    plain = _bytes_sent(broker.bootstrap_servers, events, **{"compression.type": "none"})
    assert plain > payload  # every message whole, plus framing
    assert compressed < plain / 2


def test_broker_down_never_raises_and_enqueue_stays_under_a_millisecond() -> None:
    dead = f"127.0.0.1:{free_port()}"
    factory = KafkaCaptureEventSink.factory(
        dead,
        producer_config={"message.timeout.ms": 500, "socket.connection.setup.timeout.ms": 1000},
    )
    sink = AsyncCaptureEventSink.wrap(factory, 2000)()
    p99 = p99_emit_seconds(sink, mixed_events(20_000))
    start = time.monotonic()
    sink.close(timeout=2)
    assert time.monotonic() - start < 4
    assert p99 < 0.001


def test_direct_sink_counts_undeliverable_messages(broker) -> None:
    dead = f"127.0.0.1:{free_port()}"
    sink = KafkaCaptureEventSink(dead, producer_config={"message.timeout.ms": 300})
    events: list[CaptureEvent] = mixed_events(50)
    for e in events:
        sink.emit(e)
    assert sink.flush(5) is True  # nothing left queued: every message timed out
    assert sink.emitted == len(events) and sink.undelivered == len(events)
    assert sink.failures.count >= len(events)


def test_close_gives_up_within_its_timeout_counts_the_rest_and_releases_the_producer() -> None:
    # The broker is down and messages would be retried for 30 s: close must
    # not wait that long, and what it gives up on must be counted.
    dead = f"127.0.0.1:{free_port()}"
    sink = KafkaCaptureEventSink(dead, producer_config={"message.timeout.ms": 30_000})
    events = mixed_events(40)
    for e in events:
        sink.emit(e)
    start = time.monotonic()
    sink.close(timeout=0.5)
    assert time.monotonic() - start < 3
    assert sink.undelivered == len(events)
    sink.emit(events[0])  # after close: counted, never raised
    assert sink.dropped == 1
    sink.close()  # a second close is harmless
