"""Sink throughput: Avro encode alone vs the Kafka sink direct vs async-wrapped.

Runs against a real local broker (tansu) started here. Each round times every
path once, ``--repeat`` rounds in this one run; the median events/s and the
median of the per-round ratios to encode-only are printed. The generic
fastavro encoder is timed too, as the reference for faro's specialized one.

    python bench/sink_throughput.py [--events 200000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import gc
import io
import os
import platform
import statistics
import time
import uuid
from collections.abc import Callable

import fastavro

from faro import (
    AsyncCaptureEventSink,
    CaptureEvent,
    EventType,
    FeatureValueType,
    KafkaCaptureEventSink,
    OperatorType,
)
from faro._dev.broker import LocalBroker
from faro.core.avro_codec import encode_single_object, parsed_schema


def entity_events(n: int) -> list[CaptureEvent]:
    return [
        CaptureEvent(
            f"ev-{i}", EventType.ENTITY, "user-feature-pipeline", "rolling-amount-window",
            OperatorType.WINDOW, 1_700_000_000_000 + i, features=["purchase_amount_7d"],
            entity_id=f"user-{i % 10_000}", feature_name="purchase_amount_7d",
            feature_value=i * 0.5, value_type=FeatureValueType.SCALAR_DOUBLE,
            event_time=1_700_000_000_000 + i, sample_rate=1.0, trace_id=f"{i:032x}",
        )
        for i in range(n)
    ]  # fmt: skip


def timed(events: list[CaptureEvent], run: Callable[[list[CaptureEvent]], None]) -> float:
    start = time.perf_counter()
    run(events)
    return len(events) / (time.perf_counter() - start)


def generic_encode(events: list[CaptureEvent]) -> None:
    schema = parsed_schema()
    for e in events:
        fastavro.schemaless_writer(io.BytesIO(), schema, e.to_dict())


def faro_encode(events: list[CaptureEvent]) -> None:
    for e in events:
        encode_single_object(e)


def kafka_direct(bootstrap: str) -> Callable[[list[CaptureEvent]], None]:
    def run(events: list[CaptureEvent]) -> None:
        sink = KafkaCaptureEventSink(bootstrap, f"bench-{uuid.uuid4().hex[:6]}")
        for e in events:
            sink.emit(e)
        assert sink.flush(60), "direct sink did not drain"
        assert sink.emitted == len(events) and sink.undelivered == 0, sink.failures.count

    return run


def kafka_async(bootstrap: str) -> Callable[[list[CaptureEvent]], None]:
    def run(events: list[CaptureEvent]) -> None:
        factory = KafkaCaptureEventSink.factory(bootstrap, f"bench-{uuid.uuid4().hex[:6]}")
        sink = AsyncCaptureEventSink(factory, capacity=len(events))
        for e in events:
            sink.emit(e)
        assert sink.flush(60), "async sink did not drain"
        assert sink.dropped == 0 and sink.delivered == len(events)
        sink.close()

    return run


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=200_000, help="events per timed pass")
    parser.add_argument("--repeat", type=int, default=5, help="rounds, each timing every path once")
    args = parser.parse_args()
    events = entity_events(args.events)
    gc.collect()
    gc.freeze()  # the retained test events are not what a collector should be timed on

    with LocalBroker() as broker:
        paths = {
            "generic": generic_encode,
            "encode": faro_encode,
            "direct": kafka_direct(broker.bootstrap_servers),
            "async": kafka_async(broker.bootstrap_servers),
        }
        # Rounds interleave the paths, so a change in the machine's load during
        # the run falls on all of them; each ratio is taken within one round.
        rates: dict[str, list[float]] = {name: [] for name in paths}
        for _ in range(args.repeat):
            for name, run in paths.items():
                rates[name].append(timed(events, run))

    def median(name: str) -> float:
        return statistics.median(rates[name])

    def ratio(name: str) -> float:
        return statistics.median(a / e for a, e in zip(rates[name], rates["encode"], strict=True))

    generic, encode_only, direct, via_async = map(median, paths)
    py = f"{platform.python_implementation()} {platform.python_version()}"
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {py}")
    print(f"{args.events:,} ENTITY events per pass, {args.repeat} interleaved rounds; medians of")
    print("events/s and of the per-round ratio to encode-only. Kafka paths are timed")
    print("until every message is acknowledged by the local broker.")
    print(f"(fastavro, generic)  {generic:>10,.0f} events/s   {ratio('generic'):.2f}")
    print(f"avro encode only     {encode_only:>10,.0f} events/s   1.00")
    print(f"kafka sink direct    {direct:>10,.0f} events/s   {ratio('direct'):.2f}")
    print(
        f"async + kafka sink   {via_async:>10,.0f} events/s   {ratio('async'):.2f}"
        "  (target >= 0.75)"
    )


if __name__ == "__main__":
    main()
