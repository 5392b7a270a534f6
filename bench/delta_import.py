"""`faro import-delta` throughput: a Delta table into the store vs reading its files alone.

Writes ``--events`` CaptureEvents (98 % ENTITY from 10,000 users, 2 % AGGREGATE)
to a Delta table with ``DeltaCaptureEventSink`` in ``--commits`` appends, then
alternates over ``--rounds`` rounds:

* read only: every file of the table read with pyarrow and cast to the
  store's schema, nothing written;
* read and store: the same reads, handed to the store's ``EventWriter`` in
  writes of the import's size (deduplication, partitioning, zstd Parquet, the
  journal): the floor for any import into this store;
* import: ``DeltaImport.run_once`` into a fresh store, which also reads the
  table's log commit by commit and records its progress.

Prints each round, the median events/s of each and the median of the
per-round ratio of import to read-and-store.

    python bench/delta_import.py [--events 1000000] [--commits 20] [--rounds 5]
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path
from statistics import median

import pyarrow as pa
import pyarrow.parquet as pq
from deltalake import DeltaTable

from faro import CaptureEvent, DeltaCaptureEventSink, EventType, FeatureValueType, OperatorType
from faro.store.columns import SCHEMA
from faro.store.delta_import import DeltaImport
from faro.store.writer import EventWriter

T0 = 1_790_000_000_000


def events(start: int, n: int) -> list[CaptureEvent]:
    out = []
    for i in range(start, start + n):
        if i % 50 == 49:
            out.append(CaptureEvent(
                f"agg-{i}", EventType.AGGREGATE, "order-pipeline", "order-agg-window",
                OperatorType.WINDOW, T0 + i, subtask_index=i % 4, features=["order_count"],
                input_count=500, output_count=12, late_count=1, watermark=T0 + i - 5_000,
            ))  # fmt: skip
        else:
            out.append(CaptureEvent(
                f"ev-{i}", EventType.ENTITY, "user-feature-pipeline", "rolling-amount-window",
                OperatorType.WINDOW, T0 + i, features=["purchase_amount_7d"],
                entity_id=f"user-{i % 10_000}", feature_name="purchase_amount_7d",
                feature_value=i * 0.25, value_type=FeatureValueType.SCALAR_DOUBLE,
                event_time=T0 + i - 700, sample_rate=0.1, trace_id=f"{i:032x}",
            ))  # fmt: skip
    return out


def read_only(table: str) -> int:
    rows = 0
    for uri in DeltaTable(table).file_uris():
        rows += pq.read_table(uri).select(SCHEMA.names).cast(SCHEMA).num_rows
    return rows


def read_and_store(table: str, store: Path, batch: int) -> int:
    writer = EventWriter(store, "bench")
    rows, pending = 0, []
    for uri in DeltaTable(table).file_uris():
        pending.append(pq.read_table(uri).select(SCHEMA.names).cast(SCHEMA))
        if sum(t.num_rows for t in pending) >= batch:
            rows += writer.write(pa.concat_tables(pending)).rows
            pending = []
    if pending:
        rows += writer.write(pa.concat_tables(pending)).rows
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--commits", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="faro-bench-delta-"))
    table = str(work / "capture-events")
    per_commit = args.events // args.commits
    for c in range(args.commits):
        sink = DeltaCaptureEventSink(table, batch_size=per_commit + 1)
        sink.emit_batch(events(c * per_commit, per_commit))
        sink.close()
    total = per_commit * args.commits
    print(f"{total:,} events in {args.commits} commits written to {table}")

    reads, stores, imports = [], [], []
    batch = 100_000  # DeltaImport's default batch_events
    for r in range(args.rounds):
        start = time.perf_counter()
        assert read_only(table) == total
        reads.append(total / (time.perf_counter() - start))
        start = time.perf_counter()
        assert read_and_store(table, work / f"floor-{r}", batch) == total
        stores.append(total / (time.perf_counter() - start))
        start = time.perf_counter()
        summary = DeltaImport(table, work / f"store-{r}", batch_events=batch).run_once()
        imports.append(total / (time.perf_counter() - start))
        assert summary.events == total and summary.duplicates == 0
        print(f"round {r + 1}: read only {reads[-1]:,.0f} events/s, read and store "
              f"{stores[-1]:,.0f}, import {imports[-1]:,.0f}")  # fmt: skip

    ratio = median(i / s for i, s in zip(imports, stores, strict=True))
    print(f"\nmachine: {platform.machine()}, CPython {platform.python_version()}")
    print(f"read only       {median(reads):>12,.0f} events/s")
    print(f"read and store  {median(stores):>12,.0f} events/s")
    print(f"import          {median(imports):>12,.0f} events/s   {ratio:.2f} of read and store")


if __name__ == "__main__":
    main()
