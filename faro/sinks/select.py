"""Choosing a sink by name, for jobs and tools configured from the command line."""

from __future__ import annotations

import argparse

from faro.core.sink import SinkFactory
from faro.sinks.async_sink import AsyncCaptureEventSink
from faro.sinks.delta import DeltaCaptureEventSink
from faro.sinks.http import HttpCaptureEventSink
from faro.sinks.kafka import KafkaCaptureEventSink
from faro.sinks.otlp import OtlpCaptureEventSink
from faro.sinks.stdout import StdoutCaptureEventSink

SINK_KINDS = (
    "stdout", "kafka", "http", "otlp", "delta",
    "async-kafka", "async-http", "async-otlp", "async-delta",
)  # fmt: skip


def sink_factory(
    kind: str,
    *,
    bootstrap_servers: str | None = None,
    topic: str | None = None,
    url: str | None = None,
    capacity: int | None = None,
    path: str | None = None,
) -> SinkFactory:
    """A picklable factory for the sink named ``kind`` (one of :data:`SINK_KINDS`).

    ``async-*`` wraps the named sink in an ``AsyncCaptureEventSink`` of
    ``capacity`` events. ``url`` is the ingest URL for ``http`` and the
    collector's base URL for ``otlp``; ``path`` the Delta table of ``delta``.
    """
    if kind not in SINK_KINDS:
        raise ValueError(f"sink must be one of {', '.join(SINK_KINDS)}, got {kind!r}")
    base = kind.removeprefix("async-")
    factory: SinkFactory
    if base == "stdout":
        factory = StdoutCaptureEventSink.factory()
    elif base == "kafka":
        if not bootstrap_servers:
            raise ValueError(
                f"sink {kind!r} needs bootstrap servers, e.g. --bootstrap-servers localhost:9092"
            )
        factory = KafkaCaptureEventSink.factory(bootstrap_servers, topic)
    elif base == "delta":
        if not path:
            raise ValueError(f"sink {kind!r} needs a table path, e.g. --path /tmp/faro/events")
        factory = DeltaCaptureEventSink.factory(path)
    else:
        if not url:
            raise ValueError(f"sink {kind!r} needs a URL, e.g. --url http://localhost:9000/ingest")
        cls = HttpCaptureEventSink if base == "http" else OtlpCaptureEventSink
        factory = cls.factory(url)
    return AsyncCaptureEventSink.wrap(factory, capacity) if kind.startswith("async-") else factory


def add_sink_arguments(parser: argparse.ArgumentParser, default: str = "stdout") -> None:
    group = parser.add_argument_group("where capture events go")
    group.add_argument("--sink", choices=SINK_KINDS, default=default, help=f"default: {default}")
    group.add_argument("--bootstrap-servers", help="Kafka bootstrap servers for the kafka sinks")
    group.add_argument("--topic", default=None, help="Kafka topic (default: faro.capture-events)")
    group.add_argument("--url", help="faro-api /ingest URL for http, collector base URL for otlp")
    group.add_argument("--path", help="Delta table directory for the delta sinks")
    group.add_argument(
        "--capacity", type=int, default=None, help="ring buffer of the async sinks (default: 10000)"
    )


def sink_factory_from_args(args: argparse.Namespace) -> SinkFactory:
    return sink_factory(
        args.sink,
        bootstrap_servers=args.bootstrap_servers,
        topic=args.topic,
        url=args.url,
        capacity=args.capacity,
        path=args.path,
    )
