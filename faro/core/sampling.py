"""Deterministic sampling and trace ids.

Both are pure functions of their inputs (BLAKE2b, not Python's salted
``hash``), so every operator, process and pipeline makes the same choice for
the same entity: an entity sampled in one place is sampled everywhere, and
lineage across operators stays complete.
"""

from __future__ import annotations

from hashlib import blake2b

_SCALE = float(1 << 64)
# Keyed once and copied per call: setting up BLAKE2b's parameters (digest size,
# personalization) is most of the cost of hashing a short key (0.97 -> 0.59 µs).
_SAMPLE = blake2b(digest_size=8, person=b"faro-sample")
_TRACE = blake2b(digest_size=16, person=b"faro-trace")


def sample_point(entity_id: str) -> float:
    """Where this entity falls in [0, 1); it is sampled at rate r when this is < r."""
    h = _SAMPLE.copy()
    h.update(entity_id.encode())
    return int.from_bytes(h.digest(), "big") / _SCALE


def is_sampled(entity_id: str, rate: float) -> bool:
    if rate >= 1.0:
        return True
    if rate <= 0.0:
        return False
    return sample_point(entity_id) < rate


def trace_id(pipeline_id: str, entity_id: str, event_time: int | None) -> str:
    """One id per (pipeline, entity, event time): the same record seen by several
    operators of a pipeline, which keep Flink's element timestamp, shares it."""
    key = f"{pipeline_id}\x1f{entity_id}\x1f{'' if event_time is None else event_time}"
    h = _TRACE.copy()
    h.update(key.encode())
    return h.hexdigest()
