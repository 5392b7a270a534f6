"""Query API latency at 1 M and 10 M stored events, and ingest throughput.

For each size in ``--events`` (1 M and 10 M by default, in this one run)
builds a fresh store of generated events through the store's writer: 90 %
ENTITY events of 4 features for 100,000 entities in 2 pipelines, 10 %
AGGREGATE flushes of 20 operators, spread over the last 24 hours. Then
times every read endpoint ``--repeat`` times in-process (FastAPI's test
client: routing, validation, DuckDB and serialization; no network), once on
the store as written and once after ``faro compact``, and prints the first
request's time and p50/p95 of the rest per endpoint, and the time of as-of lookups
and of skew checks of 100, 1,000 and 10,000 entities in one request, and of comparing
the two pipelines over 1, 6 and 24 hours; then POSTs Avro
batches to /ingest of the largest store from one client and from two at
once, and prints events/s.

    python bench/api.py [--events 1000000 10000000] [--repeat 30]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from fastapi.testclient import TestClient

from faro.api import create_app
from faro.core.avro_codec import encode_container
from faro.core.sampling import trace_id
from faro.store.columns import SCHEMA, table_to_events
from faro.store.maintenance import compact
from faro.store.writer import EventWriter

FEATURES = ["purchase_amount_7d", "session_count_1h", "avg_basket_30d", "clicks_24h"]
PIPELINES = ["user-feature-pipeline", "fraud-pipeline"]
ENTITIES = 100_000
CHUNK = 1_000_000


def chunk(start: int, n: int, now: int, rng: np.random.Generator) -> pa.Table:
    """``n`` events as columns, built with numpy (Python objects would dominate)."""
    ids = np.arange(start, start + n)
    agg = ids % 10 == 0
    ent = ~agg
    t = now - rng.integers(0, 24 * 3_600_000, n)
    entity = rng.integers(0, ENTITIES, n)
    feature_names = np.array(FEATURES)[rng.integers(0, len(FEATURES), n)]
    values = rng.normal(100, 15, n)
    null_value = ent & (rng.random(n) < 0.02)

    def only(mask: np.ndarray, arr: np.ndarray, type_: pa.DataType) -> pa.Array:
        return pa.array(arr, type_, mask=~mask)

    pipelines = np.array(PIPELINES)[entity % 2]
    cols = {
        "event_id": pa.array(np.char.add("e", ids.astype(str))),
        "event_type": pa.array(np.where(agg, "AGGREGATE", "ENTITY")),
        "schema_version": pa.array(np.ones(n, np.int32)),
        "pipeline_id": pa.array(pipelines),
        "operator_id": pa.array(
            np.where(agg, np.char.add("op-", (ids % 20).astype(str)), "rolling-window")
        ),
        "operator_type": pa.array(np.where(agg, "WINDOW", "PROCESS")),
        "processing_time": pa.array(t),
        "subtask_index": pa.array((ids % 4).astype(np.int32)),
        "features": pa.ListArray.from_arrays(
            pa.array(np.arange(n + 1, dtype=np.int32)), pa.array(feature_names)
        ),
        "input_count": only(agg, np.full(n, 500), pa.int64()),
        "output_count": only(agg, np.full(n, 480), pa.int64()),
        "late_count": only(agg, np.full(n, 3), pa.int64()),
        "watermark": only(agg, t - 5000, pa.int64()),
        "capture_drop_since_last": pa.array(np.zeros(n, bool)),
        "dropped_count": pa.array(np.zeros(n, np.int64)),
        "entity_id": only(ent, np.char.add("user-", entity.astype(str)), pa.string()),
        "feature_name": only(ent, feature_names, pa.string()),
        "feature_value": only(ent & ~null_value, values, pa.float64()),
        "value_type": only(ent, np.full(n, "SCALAR_DOUBLE"), pa.string()),
        "event_time": only(ent, t - 1000, pa.int64()),
        "sample_rate": only(ent, np.full(n, 0.1), pa.float64()),
        "trace_id": pa.array(traces(pipelines, entity, t - 1000, ent)),
    }
    return pa.table(
        [cols[f.name] if f.name in cols else pa.nulls(n, f.type) for f in SCHEMA], schema=SCHEMA
    )


def traces(pipelines: np.ndarray, entity: np.ndarray, event_time: np.ndarray,
           ent: np.ndarray) -> list[str | None]:  # fmt: skip
    """Trace ids as the recorder makes them: hashes, in no order that row-group
    statistics could prune by (one per record here: one operator per pipeline)."""
    return [
        trace_id(p, f"user-{e}", int(t)) if is_ent else None
        for p, e, t, is_ent in zip(pipelines.tolist(), entity.tolist(), event_time.tolist(),
                                   ent.tolist(), strict=True)
    ]  # fmt: skip


def build(data_dir: Path, n: int) -> str:
    """Stores ``n`` events; returns the trace id of one of them."""
    rng = np.random.default_rng(7)
    now = int(time.time() * 1000)
    writer = EventWriter(data_dir, "bench")
    sample = ""
    for start in range(0, n, CHUNK):
        table = chunk(start, min(CHUNK, n - start), now, rng)
        sample = sample or table.column("trace_id").drop_null()[0].as_py()
        writer.write(table)
        print(f"  stored {min(start + CHUNK, n):,} events", flush=True)
    return sample


def timings(client: TestClient, url: str, repeat: int) -> tuple[float, float, float]:
    """The first request (it also fills DuckDB's footer cache and the rollups, value
    cache and indexes of the files it reads), then p50 and p95 of ``repeat`` more."""
    start = time.perf_counter()
    client.get(url).raise_for_status()
    first = (time.perf_counter() - start) * 1000
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        client.get(url).raise_for_status()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return first, statistics.median(samples), samples[max(0, int(len(samples) * 0.95) - 1)]


def measure(client: TestClient, reads: dict[str, str], repeat: int, title: str) -> None:
    print(f"\n{title}, {repeat} requests each (ms)")
    print(f"{'endpoint':<26}{'first':>9}{'p50':>9}{'p95':>9}")
    for name, url in reads.items():
        first, p50, p95 = timings(client, url, repeat)
        print(f"{name:<26}{first:>9.1f}{p50:>9.1f}{p95:>9.1f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--events", type=int, nargs="+", default=[1_000_000, 10_000_000],
        help="store sizes, each measured in a fresh store",
    )  # fmt: skip
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    for i, n in enumerate(args.events):
        with tempfile.TemporaryDirectory() as tmp:
            data_dir = Path(tmp)
            print(f"\nbuilding a store of {n:,} events", flush=True)
            client = TestClient(create_app(data_dir))
            reads = read_urls(build(data_dir, n))
            measure(client, reads, args.repeat, f"{n:,} stored events as written")
            report = compact(data_dir)
            print(f"\nfaro compact: {report.files_before} files -> {report.files_after}")
            measure(client, reads, args.repeat, f"{n:,} stored events after faro compact")
            lookups(client)
            skew(client)
            compare(client)
            if i == len(args.events) - 1:
                ingest(client, n)


def read_urls(sample_trace: str) -> dict[str, str]:
    p, feature = "user-feature-pipeline", "/features/purchase_amount_7d"
    at = int(time.time() * 1000) - 6 * 3_600_000  # inside the 24 hours the store spans
    return {
        "pipelines": "/pipelines",
        "pipeline health": f"/pipelines/{p}/health",
        "features": f"/pipelines/{p}/features",
        "operators": f"/pipelines/{p}/operators?window=24h",
        "subtasks": f"/pipelines/{p}/subtasks?window=24h",
        "feature health": f"{feature}/health?pipeline_id={p}&window=24h",
        "entity values": f"{feature}/values?pipeline_id={p}&entity_id=user-4242&window=24h",
        "value summary": f"{feature}/values/summary?pipeline_id={p}&window=24h",
        "value as of (processing)": f"{feature}/values/as-of?pipeline_id={p}&entity_id=user-4242"
        f"&at={at}",
        "value as of (event)": f"{feature}/values/as-of?pipeline_id={p}&entity_id=user-4242"
        f"&at={at}&by=event",
        "entity as of": f"/entities/user-4242/as-of?at={at}",
        "trace": f"/traces/{sample_trace}",
        "lineage": "/entities/user-4242/lineage",
        "store": "/store",
    }


def lookups(client: TestClient) -> None:
    """POST /entities/as-of: batches of entities (of the 100,000), each at a moment in the
    last 24 hours, as a model's prediction log would ask; p50 of 5 batches per size."""
    post_batches(
        client, "/entities/as-of", "POST /entities/as-of", "lookups", seed=5,
        body=lambda rows: {"lookups": rows},
    )  # fmt: skip


def skew(client: TestClient) -> None:
    """POST /features/{feature}/skew: served values of random entities, each at a moment
    in the last 24 hours. The values are random, so every captured row is a mismatch and
    its history is read too: the endpoint's slowest case; p50 of 5 batches per size."""
    post_batches(
        client, "/features/purchase_amount_7d/skew",
        "POST /features/purchase_amount_7d/skew, every row a mismatch", "rows", seed=6,
        body=lambda rows: {"pipeline_id": "user-feature-pipeline", "rows": rows}, values=True,
        note=lambda answers: f"{statistics.mean(a['mismatched'] for a in answers):,.0f} "
        "mismatched a batch",
    )  # fmt: skip


def compare(client: TestClient) -> None:
    """GET /features/{feature}/compare of the two pipelines over windows of event time;
    p50 of 5 requests per window. The store gives each pipeline its own entities, so
    every record is one-sided: the join of the two sides costs what it costs when they
    share them."""
    print("\nGET /features/purchase_amount_7d/compare, user-feature-pipeline against "
          "fraud-pipeline (ms)")  # fmt: skip
    url = ("/features/purchase_amount_7d/compare?pipeline_id=user-feature-pipeline"
           "&against=fraud-pipeline&window=")  # fmt: skip
    for window in ("1h", "6h", "24h"):
        samples = []
        for _ in range(5):
            start = time.perf_counter()
            answer = client.get(url + window).raise_for_status().json()
            samples.append((time.perf_counter() - start) * 1000)
        records = answer["compared"] + answer["only_in_pipeline"] + answer["only_in_against"]
        print(f"{window:>6}   {statistics.median(samples):>9.1f} ms   ({records:,} records)")


def post_batches(
    client: TestClient,
    path: str,
    title: str,
    unit: str,
    *,
    seed: int,
    body: Callable[[list[dict[str, Any]]], dict[str, Any]],
    values: bool = False,
    note: Callable[[list[dict[str, Any]]], str] | None = None,
    sizes: tuple[int, ...] = (100, 1_000, 10_000),
) -> None:
    """POSTs 5 bodies of each size of random (entity, moment in the last 24 hours) rows,
    with a random value each when ``values``, and prints the p50 per size, with ``note``
    of the answers."""
    rng = np.random.default_rng(seed)
    now = int(time.time() * 1000)
    print(f"\n{title} (ms per batch, {unit}/s)")
    for size in sizes:
        samples, answers = [], []
        for _ in range(5):
            entities, ago = rng.integers(0, ENTITIES, size), rng.integers(0, 86_400_000, size)
            rows: list[dict[str, Any]] = [
                {"entity_id": f"user-{e}", "at": int(now - t)}
                for e, t in zip(entities, ago, strict=True)
            ]
            if values:
                for row, value in zip(rows, rng.normal(100, 15, size), strict=True):
                    row["value"] = float(value)
            start = time.perf_counter()
            response = client.post(path, json=body(rows))
            samples.append((time.perf_counter() - start) * 1000)
            answers.append(response.raise_for_status().json())
        p50 = statistics.median(samples)
        extra = "" if note is None else f"   ({note(answers)})"
        print(f"{size:>6,} {unit}   {p50:>9.1f} ms   {size / p50 * 1000:>9,.0f} {unit}/s{extra}")


def ingest(client: TestClient, stored: int) -> None:
    rng = np.random.default_rng(11)
    print(f"\ningest into the {stored:,}-event store (Avro containers of 10,000 events, "
          "20 POSTs per run)")  # fmt: skip
    for posters in (1, 2):
        bodies = [
            encode_container(table_to_events(chunk(start, 10_000, int(time.time() * 1000), rng)))
            for start in range(stored + posters * 10**7, stored + posters * 10**7 + 200_000,
                               10_000)
        ]  # fmt: skip
        rate = ingest_rate(client.app, bodies, posters)
        print(f"{posters} concurrent poster(s): {rate:>9,.0f} events/s "
              f"({rate / 100_000:.2f} x the 100k target)")  # fmt: skip


def ingest_rate(app: Any, bodies: list[bytes], posters: int) -> float:
    """Events/s of ``bodies`` POSTed by ``posters`` clients at once (as several
    pipelines' HTTP sinks would): one request can decode while another writes."""

    def post_all(share: list[bytes]) -> None:
        client = TestClient(app)
        for body in share:
            r = client.post("/ingest", content=body, headers={"content-type": "application/avro"})
            r.raise_for_status()

    start = time.perf_counter()
    with ThreadPoolExecutor(posters) as pool:
        list(pool.map(post_all, [bodies[i::posters] for i in range(posters)]))
    return len(bodies) * 10_000 / (time.perf_counter() - start)


if __name__ == "__main__":
    main()
