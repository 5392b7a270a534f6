"""Faust throughput: the same agent plain, with FaroSensor counting (AGGREGATE), and
with FaroSensor also capturing the table's every write as an ENTITY event (rate
1.0), both into Kafka through the async sink.

The agent adds each order to its user's total in a table, the usual shape of a
Faust feature pipeline. Each variant runs as a fresh worker on a local broker
(tansu) over the same prepared topic of ``--records`` orders; the agent times
itself from its first order to its last, so worker start-up and shutdown stay
out of the figures. The sensor's own work per order is also timed outside
Faust, where it is exact. Variants are interleaved over ``--repeat`` rounds, each
round starting one variant later, and each ratio is taken within its round
against that round's plain run; the medians are printed.

    python bench/faust_overhead.py [--records 30000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

VARIANTS = ("plain", "AGGREGATE", "ENTITY (rate 1.0)")
PARTITIONS = 2


def worker() -> None:
    """The Faust app of one variant (run by :func:`run_variant` in a process of its own)."""
    import faust

    from faro import AsyncCaptureEventSink, FaroConfig, FaroFeatureConfig, KafkaCaptureEventSink
    from faro._dev.faust_app import local_app
    from faro.faust import FaroSensor

    broker, variant = os.environ["BROKER"], os.environ["VARIANT"]
    records = int(os.environ["RECORDS"])
    app = local_app(f"faro-bench-{uuid.uuid4().hex[:8]}", broker, os.environ["DATADIR"], PARTITIONS)
    orders = app.topic(os.environ["ORDERS"], value_serializer="json", partitions=PARTITIONS)
    totals = app.Table("purchase_total", default=float)
    if variant != "plain":
        sink = AsyncCaptureEventSink.wrap(
            KafkaCaptureEventSink.factory(broker, topic=os.environ["CAPTURE"]), 100_000
        )
        entity = FaroFeatureConfig(entity_key="key", feature_value="value")
        configs = {"purchase_total": FaroConfig(features={"purchase_total": entity})}
        app.sensors.add(FaroSensor("bench", sink, configs if "ENTITY" in variant else None))
    seen, started = 0, 0.0

    @app.agent(orders, name="score")
    async def score(stream: Any) -> None:
        nonlocal seen, started
        async for order in stream:
            totals[order["user"]] += order["amount"]
            seen += 1
            if seen == 1:
                started = time.perf_counter()
            elif seen == records:
                elapsed = time.perf_counter() - started
                Path(os.environ["RESULT"]).write_text(json.dumps([records - 1, elapsed]))
                os.kill(os.getpid(), signal.SIGTERM)

    faust.Worker(app, loglevel="error", redirect_stdouts=False).execute_from_commandline()


class _Stream:
    """What the sensor reads of a Faust stream."""

    prefix, channel, concurrency_index, events_total = "score", "orders", 0, 0


class _Message:
    timestamp, partition = 1_780_000_000.0, 0


class _Event:
    message = _Message()

    def __init__(self, value: Any):
        self.value = value


class _Table:
    name = "purchase_total"


class _NoSink:
    def emit(self, event: Any) -> None: ...

    def flush(self, timeout: float | None = None) -> bool:
        return True

    def close(self) -> None: ...


def sensor_us_per_order(variant: str, n: int = 100_000) -> float:
    """FaroSensor's own work for one order of the agent (its stream's event in and
    out, and the table write), timed outside Faust, where it is exact: best of 3."""
    import weakref

    from faust.streams import _current_event  # Faust's own: current_event() reads it

    from faro import FaroConfig, FaroFeatureConfig
    from faro.faust import FaroSensor

    entity = FaroFeatureConfig(entity_key="key", feature_value="value")
    configs = {"purchase_total": FaroConfig(features={"purchase_total": entity})}
    sensor = FaroSensor("bench", _NoSink, configs if "ENTITY" in variant else None)
    stream, table = _Stream(), _Table()
    events = [_Event({"user": f"user-{i % 1000}", "amount": i % 997 / 10}) for i in range(n)]
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for event in events:
            state = sensor.on_stream_event_in(None, 0, stream, event)
            _current_event.set(weakref.ref(event))
            sensor.on_table_set(table, event.value["user"], event.value["amount"])
            stream.events_total += 1
            sensor.on_stream_event_out(None, 0, stream, event, state)
        best = min(best, time.perf_counter() - start)
        sensor.flush()
    return best / n * 1e6


def run_variant(broker: Any, orders_topic: str, records: int, variant: str, tmp: Path) -> float:
    """Orders per second inside the agent, first order to last."""
    result = tmp / f"{uuid.uuid4().hex}.json"
    env = dict(
        os.environ, FARO_BENCH_WORKER="1", BROKER=broker.bootstrap_servers, RECORDS=str(records),
        VARIANT=variant, ORDERS=orders_topic, CAPTURE=f"bench-capture-{uuid.uuid4().hex[:8]}",
        DATADIR=str(tmp / uuid.uuid4().hex), RESULT=str(result),
    )  # fmt: skip
    done = subprocess.run(
        [sys.executable, __file__], env=env, capture_output=True, text=True, timeout=900
    )
    if not result.exists():
        raise RuntimeError(f"{variant} run failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    counted, seconds = json.loads(result.read_text())
    return float(counted / seconds)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=30_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    from faro._dev.broker import LocalBroker

    with LocalBroker() as broker, tempfile.TemporaryDirectory() as tmp:
        topic = f"bench-orders-{uuid.uuid4().hex[:8]}"
        admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
        admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS)])[topic].result(10)
        producer = Producer({"bootstrap.servers": broker.bootstrap_servers, "linger.ms": 20})
        for i in range(args.records):
            user = f"user-{i * 2654435761 % 1000}"
            producer.produce(topic, json.dumps({"user": user, "amount": i % 997 / 10}).encode(),
                             key=user.encode())  # fmt: skip
            if i % 10_000 == 0:
                producer.poll(0)
        producer.flush(60)
        del producer, admin  # gone before the broker stops, or librdkafka logs the loss
        print(f"{args.records:,} orders, {args.repeat} rounds, Python {sys.version.split()[0]}")

        rates: dict[str, list[float]] = {v: [] for v in VARIANTS}
        ratios: dict[str, list[float]] = {v: [] for v in VARIANTS}
        for r in range(args.repeat):
            order = VARIANTS[r % len(VARIANTS):] + VARIANTS[: r % len(VARIANTS)]
            round_rates = {v: run_variant(broker, topic, args.records, v, Path(tmp)) for v in order}
            for v in VARIANTS:
                rates[v].append(round_rates[v])
                ratios[v].append(round_rates[v] / round_rates["plain"])
            print(f"round {r + 1}: " + ", ".join(f"{v} {round_rates[v]:,.0f}/s" for v in VARIANTS),
                  flush=True)  # fmt: skip
        for v in VARIANTS:
            spread = f"[{min(ratios[v]):.2f}-{max(ratios[v]):.2f}]"
            print(f"{v:<18} {statistics.median(rates[v]):>9,.0f} orders/s  "
                  f"{statistics.median(ratios[v]):.3f} {spread}")  # fmt: skip
        plain_us = 1e6 / statistics.median(rates["plain"])
        for v in VARIANTS[1:]:
            cost = sensor_us_per_order(v)
            print(f"{v}: the sensor adds {cost:.1f} us per order outside Faust; a plain order "
                  f"costs {plain_us:.0f} us, which bounds the ratio at "
                  f"{plain_us / (plain_us + cost):.3f}")  # fmt: skip


if __name__ == "__main__":
    worker() if os.environ.get("FARO_BENCH_WORKER") else main()
