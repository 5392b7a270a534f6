"""Violations as stored: each one once, opened by one detection run and resolved by a
later run in which its condition no longer holds.

The ledger is one Parquet file, ``DATA_DIR/violations/violations.parquet``,
rewritten whole (it holds episodes, not samples, so it stays small) with the
store's atomic write (``journal.write_atomic``), under an
exclusive ``flock`` so that ``faro detect`` and a serving API never interleave
a read-modify-write. Readers see the old file or the new one, never a mix.
"""

from __future__ import annotations

import fcntl
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from faro.detect.detectors import Finding, Severity
from faro.store.journal import write_atomic

DIRECTORY = "violations"
FILE = "violations.parquet"

SCHEMA = pa.schema(
    [
        ("violation_id", pa.string()),
        ("type", pa.string()),
        ("severity", pa.string()),
        ("pipeline_id", pa.string()),
        ("operator_id", pa.string()),
        ("feature", pa.string()),
        ("metric", pa.string()),
        ("window_start", pa.int64()),
        ("window_end", pa.int64()),
        ("opened_at", pa.int64()),
        ("last_seen_at", pa.int64()),
        ("resolved_at", pa.int64()),
        ("observed", pa.float64()),
        ("baseline", pa.float64()),
        ("threshold", pa.float64()),
        ("message", pa.string()),
    ]
)


@dataclass
class Violation:
    """One episode of a condition. Times are epoch ms (UTC) of the detection runs'
    ``at``; ``window_start``/``window_end`` is the window that opened it. ``severity``
    is the highest seen during the episode, ``observed`` the latest value."""

    violation_id: str
    type: str
    severity: str
    pipeline_id: str
    operator_id: str | None
    feature: str | None
    metric: str
    window_start: int
    window_end: int
    opened_at: int
    last_seen_at: int
    resolved_at: int | None
    observed: float
    baseline: float | None
    threshold: float
    message: str

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        return (self.type, self.pipeline_id, self.operator_id or "", self.feature or "",
                self.metric)  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Transition:
    """A violation that a run opened (``status`` OPEN) or resolved (RESOLVED)."""

    status: str
    violation: Violation


def violation_id(finding: Finding, window_start: int) -> str:
    """Same condition, same opening window: same id, so re-running a detection for
    the same time stores nothing twice."""
    raw = "\x1f".join([*finding.key, str(window_start)])
    return hashlib.sha256(raw.encode()).hexdigest()[:20]


def path(data_dir: Path) -> Path:
    return Path(data_dir) / DIRECTORY / FILE


def read(data_dir: Path) -> list[Violation]:
    """Every stored violation (empty before the first detection run)."""
    file = path(data_dir)
    if not file.exists():
        return []
    return [Violation(**row) for row in pq.read_table(file, schema=SCHEMA).to_pylist()]


@contextmanager
def _locked(data_dir: Path) -> Iterator[None]:
    directory = Path(data_dir) / DIRECTORY
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def record(data_dir: Path, findings: list[Finding], at: int, window_ms: int) -> list[Transition]:
    """Applies one detection run at ``at``: a finding without an open violation of
    its key opens one; an open violation whose key has no finding is resolved at
    ``at`` (unless it was last seen after ``at``: a run back in time resolves
    nothing). Returns what opened and what resolved."""
    with _locked(data_dir):
        stored = read(data_dir)
        open_by_key = {v.key: v for v in stored if v.is_open}
        known_ids = {v.violation_id for v in stored}
        transitions: list[Transition] = []
        seen = set()
        for f in findings:
            seen.add(f.key)
            current = open_by_key.get(f.key)
            if current is not None:
                current.last_seen_at = max(current.last_seen_at, at)
                current.observed = f.observed
                current.baseline = f.baseline
                current.message = f.message
                if f.severity.rank > Severity(current.severity).rank:
                    current.severity = f.severity.value
                continue
            vid = violation_id(f, at - window_ms)
            if vid in known_ids:
                continue
            violation = Violation(
                violation_id=vid, type=f.type.value, severity=f.severity.value,
                pipeline_id=f.pipeline_id, operator_id=f.operator_id, feature=f.feature,
                metric=f.metric, window_start=at - window_ms, window_end=at, opened_at=at,
                last_seen_at=at, resolved_at=None, observed=f.observed, baseline=f.baseline,
                threshold=f.threshold, message=f.message,
            )  # fmt: skip
            stored.append(violation)
            open_by_key[f.key] = violation
            known_ids.add(vid)
            transitions.append(Transition("OPEN", violation))
        for key, v in open_by_key.items():
            if key not in seen and v.last_seen_at <= at and v.is_open:
                v.resolved_at = at
                transitions.append(Transition("RESOLVED", v))
        if transitions or seen:  # a quiet run over a quiet ledger changes nothing
            _write(data_dir, stored)
        return transitions


def _write(data_dir: Path, violations: list[Violation]) -> None:
    table = pa.Table.from_pylist([v.to_dict() for v in violations], schema=SCHEMA)
    buffer = pa.BufferOutputStream()
    pq.write_table(table, buffer)
    write_atomic(path(data_dir), buffer.getvalue().to_pybytes())
