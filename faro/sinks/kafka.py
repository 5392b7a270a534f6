"""Avro single-object messages to a Kafka topic (any Kafka-protocol broker)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from faro.core.avro_codec import encode_single_object
from faro.core.events import CaptureEvent
from faro.core.settings import settings
from faro.sinks.base import BaseSink

_librdkafka_log = logging.getLogger("faro.sinks.kafka")

_POLL_EVERY = 1000


def message_key(event: CaptureEvent) -> bytes:
    """The entity for ENTITY events, so one entity's events stay ordered in one
    partition; pipeline and operator for AGGREGATE events, for the same reason."""
    if event.entity_id is not None:
        return event.entity_id.encode()
    return f"{event.pipeline_id}/{event.operator_id}".encode()


class KafkaCaptureEventSink(BaseSink):
    """Produces CaptureEvents with an idempotent confluent-kafka producer.

    ``emit`` only enqueues into librdkafka's own buffer and never blocks: when
    that buffer is full or the broker is unreachable, events are dropped and
    counted, and delivery errors surface in :attr:`failures`. Extra
    ``producer_config`` entries override faro's defaults (for example
    ``security.protocol`` or ``compression.type``).
    """

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str | None = None,
        *,
        producer_config: Mapping[str, Any] | None = None,
    ):
        super().__init__()
        from confluent_kafka import Producer

        conf = {
            "bootstrap.servers": bootstrap_servers,
            "enable.idempotence": True,
            "linger.ms": 20,
            "message.timeout.ms": settings().kafka_message_timeout_ms,
            "on_delivery": self._on_delivery,
            "error_cb": self._on_error,
            "logger": _QuietLogger(),
        }
        conf.update(producer_config or {})
        self.topic = topic or settings().kafka_topic
        self._producer = Producer(conf)
        self._unpolled = 0
        self.delivered = 0

    def emit_batch(self, events: list[CaptureEvent]) -> None:
        produce = self._producer.produce
        for event in events:
            try:
                produce(self.topic, encode_single_object(event), message_key(event))
            except BufferError:
                self._producer.poll(0)
                try:
                    produce(self.topic, encode_single_object(event), message_key(event))
                except BufferError as exc:
                    self.dropped += 1
                    self.failures.record("the producer queue is full; event dropped", exc)
                    continue
            except Exception as exc:
                self.dropped += 1
                self.failures.record("producing to Kafka failed; event dropped", exc)
                continue
            self.emitted += 1
        self._unpolled += len(events)
        if self._unpolled >= _POLL_EVERY:
            self._unpolled = 0
            self._producer.poll(0)

    def flush(self, timeout: float | None = None) -> bool:
        try:
            return self._producer.flush(-1 if timeout is None else timeout) == 0
        except Exception as exc:
            self.failures.record("flushing the producer failed", exc)
            return False

    def close(self) -> None:
        self.flush(settings().async_close_timeout_s)

    def _on_delivery(self, err: Any, msg: Any) -> None:
        if err is None:
            self.delivered += 1
        else:
            self.dropped += 1
            self.failures.record(f"delivery to topic {self.topic!r} failed: {err}")

    def _on_error(self, err: Any) -> None:
        self.failures.record(f"Kafka client error: {err}")


class _QuietLogger:
    """Keeps librdkafka's connection chatter out of the user's stderr.

    Errors that matter already arrive through ``error_cb`` and the failure
    log; the raw lines stay available at DEBUG on ``faro.sinks.kafka``.
    """

    def log(self, level: int, fmt: str, *args: Any) -> None:
        _librdkafka_log.debug(fmt, *args)
