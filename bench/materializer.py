"""Materializer throughput: Kafka -> Parquet store vs consume-and-decode only.

Produces ``--events`` ENTITY/AGGREGATE events (1 M by default, ``--scale 10``
for 10 M) to a topic on a local broker, keyed and lz4-compressed as
``KafkaCaptureEventSink`` sends them (an ENTITY event by its entity, an
AGGREGATE event by its pipeline and operator), then, each in its own process
so peak RSS is its own (the kernel's VmHWM: ``ru_maxrss`` would also count this
script's own memory at the fork that starts the child):

* consume-and-decode: a plain consumer reads every message and decodes the
  batches with the same Avro decoder, nothing written;
* materialize: the real materializer (default batch size) into a fresh store.

Both keep pandas out of their process, as ``faro materialize`` does, and
both run with glibc's mmap threshold fixed, as the materializer sets it. The
materializer writes one batch while it consumes and decodes the next; the
consume-and-decode path is the plain loop a consumer would write. The two
alternate over ``--rounds`` rounds (each materializer in a fresh group and
store), so a change in the machine's load falls on both.

Prints each round, then the medians of events/s and peak RSS and the median
of the per-round ratios.

    python bench/materializer.py [--events 1000000] [--scale 1] [--rounds 5]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import platform
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from faro import CaptureEvent, EventType, FeatureStats, FeatureValueType, OperatorType
from faro._dev.broker import LocalBroker
from faro.core.avro_codec import encode_single_object
from faro.sinks.kafka import message_key
from faro.store import defaults
from faro.store.avro_batch import AvroBatchDecoder
from faro.store.materializer import (
    CONSUMER_DEFAULTS,
    Materializer,
    fix_mmap_threshold,
    keep_pandas_out,
    peak_rss_mb,
)

PARTITIONS = 4
T0 = 1_790_000_000_000


def events(start: int, n: int) -> list[tuple[str, bytes]]:
    """Realistic mix: 98% ENTITY from 10,000 users, 2% AGGREGATE flushes of one
    window operator; each with its Kafka key."""
    out = []
    for i in range(start, start + n):
        if i % 50 == 0:
            e = CaptureEvent(
                f"agg-{i:010d}", EventType.AGGREGATE, "order-pipeline", "order-agg-window",
                OperatorType.WINDOW, T0 + i, subtask_index=i % 2, features=["order_count"],
                input_count=500, output_count=7, late_count=0, watermark=T0 + i - 2000,
                event_time_min=T0 + i - 300_000, event_time_max=T0 + i,
                window_start=T0, window_end=T0 + 300_000,
                feature_stats=[FeatureStats("order_count", 7, 0, 500.0, 40000.0, 20.0, 120.0)],
            )  # fmt: skip
        else:
            e = CaptureEvent(
                f"ent-{i:010d}", EventType.ENTITY, "user-feature-pipeline", "rolling-amount",
                OperatorType.PROCESS, T0 + i, features=["purchase_amount_7d"],
                entity_id=f"user-{i % 10_000}", feature_name="purchase_amount_7d",
                feature_value=i * 0.37, value_type=FeatureValueType.SCALAR_DOUBLE,
                event_time=T0 + i - 1500, sample_rate=1.0, trace_id=f"{i:016x}",
            )  # fmt: skip
        out.append((message_key(e), encode_single_object(e)))
    return out


def produce(bootstrap: str, topic: str, n: int) -> None:
    from confluent_kafka import Producer

    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 50,
            "compression.type": "lz4",  # the Kafka sink's default
            "queue.buffering.max.messages": 1_000_000,
        }
    )
    chunk = 200_000
    for start in range(0, n, chunk):
        for key, value in events(start, min(chunk, n - start)):
            while True:
                try:
                    producer.produce(topic, value, key)
                    break
                except BufferError:
                    producer.poll(0.05)
        producer.flush(120)
        print(f"  produced {min(start + chunk, n):,}", flush=True)


def decode_only(bootstrap: str, topic: str, n: int, batch_size: int, result: mp.Queue) -> None:
    keep_pandas_out()  # as `faro materialize` does
    fix_mmap_threshold()  # as the materializer does: the same allocator on both sides
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "bench-decode", **CONSUMER_DEFAULTS}
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    with tempfile.TemporaryDirectory() as dead_letters:
        decoder = AvroBatchDecoder(Path(dead_letters))
        seen = 0
        start = None
        while seen < n:
            batch = []
            while len(batch) < batch_size and seen + len(batch) < n:
                got = consumer.consume(10_000, 1.0)
                if got and start is None:
                    start = time.perf_counter()
                batch += [m.value() for m in got if m.error() is None]
            seen += decoder.decode(batch).table.num_rows
        assert start is not None
        elapsed = time.perf_counter() - start
    result.put((n / elapsed, peak_rss_mb()))


def materialize(
    bootstrap: str, topic: str, n: int, batch_size: int, group: str, result: mp.Queue
) -> None:
    keep_pandas_out()  # as `faro materialize` does
    with tempfile.TemporaryDirectory() as data_dir:
        m = Materializer(bootstrap, data_dir, topic=topic, group=group, batch_size=batch_size)
        stats = m.run(idle_exit_s=15)
        assert stats.events == n, f"stored {stats.events} of {n}"
        result.put((stats.rate(), peak_rss_mb()))


def run_child(target, *args) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    ctx = mp.get_context("spawn")
    queue: mp.Queue = ctx.Queue()
    child = ctx.Process(target=target, args=(*args, queue))
    child.start()
    out = queue.get()
    child.join()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--scale", type=int, default=1, help="multiply --events")
    parser.add_argument(
        "--batch-size", type=int, default=defaults.BATCH_SIZE, help="events per batch, both paths"
    )
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds")
    args = parser.parse_args()
    n = args.events * args.scale
    if n % args.batch_size:
        # The materializer stores a partial batch only after --max-batch-seconds (5 s),
        # which would count as its time; consume-and-decode has no such wait.
        parser.error(
            f"{n:,} events do not fill whole batches of {args.batch_size:,}: "
            "choose --events as a multiple of --batch-size"
        )
    print(
        f"python {platform.python_version()}, {n:,} events, {PARTITIONS} partitions, "
        f"batches of {args.batch_size:,}, {args.rounds} rounds"
    )
    with LocalBroker() as broker:
        topic = "bench-capture-events"
        admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
        admin.create_topics([NewTopic(topic, PARTITIONS, 1)])[topic].result(10)
        del admin  # else it stays connected until the broker stops, and logs that as a failure
        produce(broker.bootstrap_servers, topic, n)
        rounds = []
        for r in range(args.rounds):
            decode = run_child(decode_only, broker.bootstrap_servers, topic, n, args.batch_size)
            stored = run_child(
                materialize, broker.bootstrap_servers, topic, n, args.batch_size,
                f"bench-materializer-{r}",
            )  # fmt: skip
            rounds.append((decode, stored))
            print(
                f"  round {r + 1}: consume-and-decode {decode[0]:,.0f}/s ({decode[1]:,.0f} MB), "
                f"materialize {stored[0]:,.0f}/s ({stored[1]:,.0f} MB), "
                f"ratio {stored[0] / decode[0]:.3f}",
                flush=True,
            )
    decode_rate = median(d[0] for d, _ in rounds)
    decode_rss = median(d[1] for d, _ in rounds)
    rate = median(m[0] for _, m in rounds)
    rss = median(m[1] for _, m in rounds)
    ratio = median(m[0] / d[0] for d, m in rounds)
    print(f"consume-and-decode only  {decode_rate:>10,.0f} events/s  peak RSS {decode_rss:,.0f} MB")
    print(f"materialize to Parquet   {rate:>10,.0f} events/s  peak RSS {rss:,.0f} MB")
    print(f"ratio materialize / consume-and-decode = {ratio:.3f}  (target >= 0.7)")
    print(
        f"materialize = {rate / 150_000:.2f} x the 150k events/s target; "
        f"peak RSS {rss / 300:.2f} x the 300 MB limit (medians of {len(rounds)} rounds)"
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
