"""`make demo`: both demo Flink jobs into a local broker, then what faro captured.

Starts the tansu broker on a free port, runs the order pipeline (AGGREGATE
mode) and the user feature pipeline (ENTITY mode) side by side on local
PyFlink mini-clusters with the async Kafka sink, reads the capture topic back
and prints a per-operator summary. Everything it starts, it stops.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from faro._dev.broker import LocalBroker
from faro.core.avro_codec import decode_single_object
from faro.core.events import CaptureEvent, EventType

TOPIC = "faro.capture-events"
JOBS = Path(__file__).resolve().parents[2] / "jobs"


def _run_jobs(bootstrap: str, records: int, rate: float) -> None:
    common = [
        *("--records", str(records), "--rate", str(rate), "--window-seconds", "2"),
        *("--sink", "async-kafka", "--bootstrap-servers", bootstrap, "--topic", TOPIC),
    ]
    user_options = ["--users", "200", "--sample-rate", "0.1"]
    jobs = {
        "order pipeline": [sys.executable, str(JOBS / "flink_order_pipeline.py"), *common],
        "user feature pipeline": [
            sys.executable,
            str(JOBS / "flink_user_features.py"),
            *common,
            *user_options,
        ],
    }
    procs = {}
    for name, cmd in jobs.items():
        print(f"  starting the {name}: {records:,} records at {rate:,.0f}/s", flush=True)
        procs[name] = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    for name, proc in procs.items():
        _, err = proc.communicate()
        if proc.returncode != 0:
            tail = err.decode(errors="replace").strip().splitlines()[-15:]
            raise SystemExit(f"the {name} failed (exit {proc.returncode}):\n" + "\n".join(tail))
        print(f"  the {name} finished", flush=True)


def _read_all(bootstrap: str) -> list[CaptureEvent]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "faro-demo", "log_level": 3})
    partitions = consumer.list_topics(TOPIC, timeout=10).topics[TOPIC].partitions
    consumer.assign([TopicPartition(TOPIC, p, 0) for p in partitions])
    events: list[CaptureEvent] = []
    idle_since = time.monotonic()
    while time.monotonic() - idle_since < 3:
        batch = consumer.consume(5000, 0.5)
        if batch:
            idle_since = time.monotonic()
        events += [decode_single_object(v) for m in batch if (v := m.value()) is not None]
    consumer.close()
    return events


def _summarize(events: list[CaptureEvent]) -> None:
    ops: dict[tuple[str, str], list[CaptureEvent]] = defaultdict(list)
    for e in events:
        ops[(e.pipeline_id, e.operator_id)].append(e)
    print(f"\nfaro captured {len(events):,} events\n")
    row = "{:<46}{:>8}{:>9}{:>7}{:>11}{:>11}{:>10}"
    print(
        row.format(
            "pipeline / operator", "flushes", "in", "out", "wm lag ms", "entity ev", "entities"
        )
    )
    for (pipeline, operator), evs in sorted(ops.items()):
        aggs = [e for e in evs if e.event_type is EventType.AGGREGATE]
        ents = [e for e in evs if e.event_type is EventType.ENTITY]
        lags = sorted(e.processing_time - e.watermark for e in aggs if e.watermark is not None)
        print(
            row.format(
                f"{pipeline} / {operator}",
                len(aggs),
                f"{sum(e.input_count or 0 for e in aggs):,}",
                f"{sum(e.output_count or 0 for e in aggs):,}",
                f"{lags[len(lags) // 2]:,}" if lags else "-",
                f"{len(ents):,}",
                f"{len({e.entity_id for e in ents}):,}",
            )
        )
    entities = [e for e in events if e.event_type is EventType.ENTITY]
    if entities:
        who = entities[0].entity_id
        print(f"\nwhat {who} had, as the pipeline computed it (ENTITY events, sampled at 10 %):")
        for e in sorted(
            (e for e in entities if e.entity_id == who), key=lambda e: e.event_time or 0
        ):
            print(f"  event time {e.event_time}  {e.feature_name} = {e.feature_value}")
    drops = sum(e.dropped_count for e in events if e.event_type is EventType.AGGREGATE)
    print(f"\ncapture events dropped by the async sinks: {drops}")
    print("PERSONAL feature purchase_count: statistics only, no ENTITY events "
          f"({sum(1 for e in entities if e.feature_name == 'purchase_count')} found)")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make demo", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--records", type=int, default=20_000, help="records per job (default: 20000)"
    )
    parser.add_argument(
        "--rate", type=float, default=2_000, help="records per second per job (default: 2000)"
    )
    args = parser.parse_args(argv)
    print("faro demo: starting a local Kafka-protocol broker (tansu)", flush=True)
    with LocalBroker() as broker:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers, "log_level": 3})
        admin.create_topics([NewTopic(TOPIC, num_partitions=4, replication_factor=1)])[
            TOPIC
        ].result(10)
        print(f"  broker at {broker.bootstrap_servers}, topic {TOPIC}", flush=True)
        _run_jobs(broker.bootstrap_servers, args.records, args.rate)
        _summarize(_read_all(broker.bootstrap_servers))
    print("\nthe broker is stopped; nothing is left running")
    return 0


if __name__ == "__main__":
    sys.exit(main())
