"""``faro tail``: the capture topic as JSON lines, to see what pipelines send.

Generic Kafka tools print faro's messages as bytes (Avro single-object
encoding). This reads them with the package's own schema and prints each one
as the JSON that ``/ingest`` accepts, one per line, so ``jq`` and ``grep``
work on it. It assigns itself every partition and commits nothing: it joins
no consumer group, so it starts at once and never moves the materializer's
offsets.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TextIO

from faro.core.avro_codec import CaptureEventDecodeError, decode_single_object
from faro.core.events import CaptureEvent, EventType
from faro.core.failures import KafkaClientLog
from faro.core.json_codec import to_json
from faro.core.settings import settings

log = logging.getLogger("faro.tail")

_METADATA_TIMEOUT_S = 10.0
_HINT_EVERY_S = 10.0
_PIPELINES_NAMED = 20


@dataclass(frozen=True)
class EventFilter:
    """Which events to print; a field left None matches every event."""

    pipeline_id: str | None = None
    operator_id: str | None = None
    event_type: EventType | None = None
    entity_id: str | None = None

    def matches(self, event: CaptureEvent) -> bool:
        return (
            (self.pipeline_id is None or event.pipeline_id == self.pipeline_id)
            and (self.operator_id is None or event.operator_id == self.operator_id)
            and (self.event_type is None or event.event_type is self.event_type)
            and (self.entity_id is None or event.entity_id == self.entity_id)
        )


@dataclass
class TailStats:
    read: int = 0
    shown: int = 0
    undecodable: int = 0


class Tail:
    """Reads one topic from fixed start offsets, chosen when it is created:
    each partition's oldest kept message, or its end (only what arrives after)."""

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str | None = None,
        *,
        from_beginning: bool = False,
        consumer_config: Mapping[str, Any] | None = None,
    ) -> None:
        from confluent_kafka import Consumer

        self.topic = topic or settings().kafka_topic
        self.stats = TailStats()
        self.pipelines_seen: set[str] = set()
        self._stop = threading.Event()
        client_log = KafkaClientLog(bootstrap_servers, log)
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap_servers,
                "error_cb": client_log.error,
                "logger": client_log,
                "group.id": "faro-tail",  # required by the client; never joined or committed
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                **(consumer_config or {}),
            }
        )
        try:
            self.start_offsets = self._assign(bootstrap_servers, from_beginning)
        except BaseException:
            self._consumer.close()
            raise

    def _assign(self, bootstrap_servers: str, from_beginning: bool) -> dict[int, int]:
        from confluent_kafka import KafkaException, TopicPartition

        try:
            metadata = self._consumer.list_topics(self.topic, timeout=_METADATA_TIMEOUT_S)
        except KafkaException as exc:
            raise RuntimeError(
                f"no answer from Kafka at {bootstrap_servers} within {_METADATA_TIMEOUT_S:.0f} s "
                f"({exc.args[0]}); check --bootstrap-servers and --consumer-config"
            ) from None
        found = metadata.topics.get(self.topic)
        if found is None or found.error is not None or not found.partitions:
            raise RuntimeError(
                f"topic {self.topic!r} does not exist on {bootstrap_servers}; pipelines send "
                f"to {settings().kafka_topic!r} unless told otherwise (--topic)"
            )
        offsets = {}
        for partition in sorted(found.partitions):
            low, high = self._consumer.get_watermark_offsets(
                TopicPartition(self.topic, partition), timeout=_METADATA_TIMEOUT_S
            )
            offsets[partition] = low if from_beginning else high
        self._consumer.assign([TopicPartition(self.topic, p, o) for p, o in offsets.items()])
        return offsets

    def no_match_hint(self) -> str:
        """What to say while nothing read matches: a filter with a typo would
        otherwise print nothing, forever."""
        seen = sorted(self.pipelines_seen)
        named = ", ".join(seen[:_PIPELINES_NAMED]) + (
            ", ..." if len(seen) > _PIPELINES_NAMED else ""
        )
        return (
            f"faro tail: {self.stats.read:,} events read, none matched; "
            f"pipelines on the topic: {named or 'none decodable'}"
        )

    def stop(self) -> None:
        """Ends :meth:`run` within a fraction of a second; safe from signal handlers."""
        self._stop.set()

    def run(
        self,
        out: TextIO,
        errors: TextIO,
        *,
        event_filter: EventFilter | None = None,
        max_events: int | None = None,
        idle_exit_s: float | None = None,
    ) -> TailStats:
        """Prints matching events to ``out`` until :meth:`stop`, ``max_events``
        printed, or ``idle_exit_s`` without a message; undecodable messages are
        named on ``errors`` (partition, offset, why) and skipped. Closes the
        consumer when it returns."""
        wanted = event_filter or EventFilter()
        last_message = time.monotonic()
        next_hint = last_message + _HINT_EVERY_S
        try:
            while not self._stop.is_set():
                if not self.stats.shown and self.stats.read and time.monotonic() >= next_hint:
                    print(self.no_match_hint(), file=errors)
                    next_hint = time.monotonic() + _HINT_EVERY_S
                messages = self._consumer.consume(500, 0.2)
                if not messages:
                    if idle_exit_s is not None and time.monotonic() - last_message >= idle_exit_s:
                        break
                    continue
                last_message = time.monotonic()
                for message in messages:
                    if message.error() is not None:
                        log.warning("faro tail: %s", message.error())
                        continue
                    self.stats.read += 1
                    try:
                        event = decode_single_object(message.value() or b"")
                    except CaptureEventDecodeError as exc:
                        self.stats.undecodable += 1
                        print(
                            f"partition {message.partition()} offset {message.offset()}: {exc}",
                            file=errors,
                        )
                        continue
                    if len(self.pipelines_seen) <= _PIPELINES_NAMED:
                        self.pipelines_seen.add(event.pipeline_id)
                    if wanted.matches(event):
                        out.write(to_json(event) + "\n")
                        self.stats.shown += 1
                        if max_events is not None and self.stats.shown >= max_events:
                            return self.stats
                out.flush()
        finally:
            out.flush()
            self._consumer.close()
        return self.stats
