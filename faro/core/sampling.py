"""Deterministic sampling and trace ids.

Both are pure functions of their inputs (not Python's salted ``hash``), so
every operator, process and pipeline makes the same choice for the same
entity: an entity sampled in one place is sampled everywhere, and lineage
across operators stays complete.

Sampling hashes the entity key with XXH64 and seed 42, which is exactly what
Spark SQL's ``xxhash64`` computes on a string column. That lets ``faro.spark``
drop unsampled rows inside the JVM, before a single row crosses into Python,
while Flink and Spark still pick the same entities. Trace ids are XXH3-128:
128 bits, so distinct records do not collide in the store; ~200 ns an id with
its key, against ~430 for keyed BLAKE2b (ids are not secrets: the
entity ids beside them are stored in the clear).
"""

from __future__ import annotations

import functools

from xxhash import xxh3_128_hexdigest, xxh64_intdigest

SAMPLE_SEED = 42  # Spark's xxhash64 seed
TRACE_SEED = 0x66A207  # trace ids: any fixed seed, apart from sampling's
SAMPLE_SHIFT = 11  # a sample point is the hash's top 53 bits, exact in a double
_SCALE = 1 << (64 - SAMPLE_SHIFT)


@functools.lru_cache(maxsize=256)
def sample_threshold(rate: float) -> int:
    """Entities whose sample point is below this are sampled at ``rate``.

    Cached: :func:`is_sampled` runs per record, and a config holds few rates;
    computing the threshold each time cost more than the hash (0.45 -> 0.19 µs).
    """
    return int(min(max(rate, 0.0), 1.0) * _SCALE)


def is_sampled(entity_id: str, rate: float) -> bool:
    if rate >= 1.0:
        return True
    if rate <= 0.0:
        return False
    point = xxh64_intdigest(entity_id.encode(), SAMPLE_SEED) >> SAMPLE_SHIFT
    return point < sample_threshold(rate)


def trace_id(pipeline_id: str, entity_id: str, event_time: int | None) -> str:
    """One id per (pipeline, entity, event time): the same record seen by several
    operators of a pipeline, which keep Flink's element timestamp, shares it."""
    key = f"{pipeline_id}\x1f{entity_id}\x1f{'' if event_time is None else event_time}"
    return xxh3_128_hexdigest(key.encode(), TRACE_SEED)
