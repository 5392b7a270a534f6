"""faro tail against the real test broker: what it prints is what was produced."""

from __future__ import annotations

import io

import pytest
from confluent_kafka import Producer

from faro import CaptureEvent, EventType, KafkaCaptureEventSink
from faro._dev.broker import free_port
from faro.cli import main
from faro.core.json_codec import from_json
from faro.tail import EventFilter, Tail
from tests.sinks.events import mixed_events
from tests.support import new_topic

pytestmark = pytest.mark.kafka


def _produce(
    bootstrap: str, topic: str, events: list[CaptureEvent], **producer_config: object
) -> None:
    sink = KafkaCaptureEventSink(bootstrap, topic, producer_config=producer_config)
    for event in events:
        sink.emit(event)
    assert sink.flush(20)
    sink.close()


def _produce_raw(bootstrap: str, topic: str, value: bytes) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    producer.produce(topic, value, partition=1)
    assert producer.flush(20) == 0


def _printed(text: str) -> list[CaptureEvent]:
    return [event for line in text.splitlines() for event in from_json(line)]


def _by_id(events: list[CaptureEvent]) -> list[CaptureEvent]:
    return sorted(events, key=lambda e: e.event_id)


def test_tail_prints_every_matching_event_and_names_the_undecodable(broker) -> None:
    bootstrap = broker.bootstrap_servers
    topic = new_topic(bootstrap)
    events = mixed_events(300)
    _produce(bootstrap, topic, events)
    _produce_raw(bootstrap, topic, b"not a capture event")

    out, errors = io.StringIO(), io.StringIO()
    tail = Tail(bootstrap, topic, from_beginning=True)
    stats = tail.run(out, errors, event_filter=EventFilter(event_type=EventType.AGGREGATE),
                     idle_exit_s=5)  # fmt: skip

    aggregates = [e for e in events if e.event_type is EventType.AGGREGATE]
    assert _by_id(_printed(out.getvalue())) == _by_id(aggregates)
    assert (stats.read, stats.shown, stats.undecodable) == (301, len(aggregates), 1)
    assert errors.getvalue().startswith("partition 1 offset ")
    assert "not Avro single-object encoded" in errors.getvalue()


def test_tail_from_now_on_shows_only_what_arrives_after_it_started(broker) -> None:
    bootstrap = broker.bootstrap_servers
    topic = new_topic(bootstrap)
    before, after = mixed_events(200)[:120], mixed_events(200)[120:]
    # One message per batch: the test broker (tansu) answers a partition's end offset
    # as the last batch's base offset + 1, which is the end only for one-message
    # batches. Kafka answers the end whatever the batching.
    _produce(bootstrap, topic, before, **{"batch.num.messages": 1})
    tail = Tail(bootstrap, topic)
    assert sum(tail.start_offsets.values()) == len(before)
    _produce(bootstrap, topic, after)

    out = io.StringIO()
    stats = tail.run(out, io.StringIO(), max_events=len(after), idle_exit_s=10)
    assert _by_id(_printed(out.getvalue())) == _by_id(after)
    assert stats.read == len(after)


def test_faro_tail_command_filters_and_reports(broker, capsys) -> None:
    bootstrap = broker.bootstrap_servers
    topic = new_topic(bootstrap)
    events = mixed_events(150)
    _produce(bootstrap, topic, events)
    argv = ["tail", "--bootstrap-servers", bootstrap, "--topic", topic, "--from-beginning"]

    assert main([*argv, "--entity", "user-5", "--idle-exit", "3"]) == 0
    captured = capsys.readouterr()
    wanted = [e for e in events if e.entity_id == "user-5"]
    assert wanted and _by_id(_printed(captured.out)) == _by_id(wanted)
    assert f"faro tail: {len(wanted)} events printed of {len(events)} read, 0 undecodable" in (
        captured.err
    )

    assert main([*argv, "--type", "ENTITY", "--max-events", "7"]) == 0
    printed = _printed(capsys.readouterr().out)
    assert len(printed) == 7 and all(e.event_type is EventType.ENTITY for e in printed)

    assert main([*argv, "--pipeline", "order-pipline", "--idle-exit", "3"]) == 0  # a typo
    captured = capsys.readouterr()
    assert captured.out == ""
    assert (
        f"{len(events)} events read, none matched; "
        "pipelines on the topic: order-pipeline, user-feature-pipeline"
    ) in captured.err

    assert main([*argv[:3], "--topic", "no-such-topic"]) == 2
    assert "topic 'no-such-topic' does not exist" in capsys.readouterr().err


def test_tail_says_so_while_its_filter_matches_nothing(broker, monkeypatch) -> None:
    bootstrap = broker.bootstrap_servers
    topic = new_topic(bootstrap)
    _produce(bootstrap, topic, mixed_events(60))
    monkeypatch.setattr("faro.tail._HINT_EVERY_S", 0.5)

    errors = io.StringIO()
    tail = Tail(bootstrap, topic, from_beginning=True)
    stats = tail.run(io.StringIO(), errors, event_filter=EventFilter(entity_id="nobody"),
                     idle_exit_s=3)  # fmt: skip
    assert (stats.read, stats.shown) == (60, 0)
    hint = "60 events read, none matched; pipelines on the topic: order-pipeline, user-feature"
    assert hint in errors.getvalue()


def test_tail_names_a_broker_it_cannot_reach_without_the_client_chatter(
    capfd, caplog, monkeypatch
) -> None:
    monkeypatch.setattr("faro.tail._METADATA_TIMEOUT_S", 2.0)
    assert main(["tail", "--bootstrap-servers", f"127.0.0.1:{free_port()}"]) == 2
    err = capfd.readouterr().err
    assert "no answer from Kafka at 127.0.0.1:" in err
    assert "|FAIL|rdkafka" not in err  # librdkafka's own lines stay at DEBUG
    said = [r for r in caplog.records if r.name == "faro.tail" and r.levelname == "WARNING"]
    assert any("Connection refused" in r.getMessage() for r in said)
