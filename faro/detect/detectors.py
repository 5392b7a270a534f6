"""The detectors: pure functions from one :class:`Snapshot` of the store to findings.

Each detector judges the window that ends at the snapshot's ``at`` (window
``k = 0``) against a baseline taken from earlier windows of the same store;
the formulas are in ``docs/violations.md``. Nothing here reads files, so each
rule can be reasoned about (and tested) on plain numbers.
"""

from __future__ import annotations

import bisect
import datetime as dt
import math
import statistics
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from faro.detect.cadence import cadence
from faro.detect.config import DAY_MS, DetectConfig, Thresholds


class ViolationType(str, Enum):
    FRESHNESS = "FRESHNESS"
    CARDINALITY_ANOMALY = "CARDINALITY_ANOMALY"
    NULL_RATE = "NULL_RATE"
    MEAN_DRIFT = "MEAN_DRIFT"
    NOT_NULL = "NOT_NULL"
    RANGE = "RANGE"
    ZSCORE = "ZSCORE"


class Severity(str, Enum):
    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"
    CRITICAL = "CRITICAL"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Severity.LOW: 0, Severity.MEDIUM: 1, Severity.HIGH: 2, Severity.CRITICAL: 3}


def severity_of(times_threshold: float) -> Severity:
    """How far past its threshold a measure is: below 1.25x LOW, 2x MEDIUM, 4x HIGH,
    beyond CRITICAL."""
    if times_threshold < 1.25:
        return Severity.LOW
    if times_threshold < 2:
        return Severity.MEDIUM
    if times_threshold < 4:
        return Severity.HIGH
    return Severity.CRITICAL


def severity_of_share(share: float) -> Severity:
    """For assertions, where any breach is a violation: the share of values breaching."""
    if share < 0.01:
        return Severity.LOW
    if share < 0.05:
        return Severity.MEDIUM
    if share < 0.2:
        return Severity.HIGH
    return Severity.CRITICAL


@dataclass(frozen=True)
class Finding:
    """A condition that holds in the judged window; the ledger turns it into a violation."""

    type: ViolationType
    pipeline_id: str
    operator_id: str | None
    feature: str | None
    metric: str
    observed: float
    baseline: float | None
    threshold: float
    severity: Severity
    message: str

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        return (self.type.value, self.pipeline_id, self.operator_id or "",
                self.feature or "", self.metric)  # fmt: skip


Rows = dict[int, dict[str, Any]]
"""Window k -> that window's aggregated row."""


@dataclass
class Snapshot:
    """What the detectors read, gathered by :mod:`faro.detect.runner`."""

    at: int
    window_ms: int
    operators: dict[tuple[str, str], Rows] = field(default_factory=dict)
    last_flush: dict[tuple[str, str], int] = field(default_factory=dict)
    # per operator: each subtask that flushed in the last day, and its last flush
    subtask_flush: dict[tuple[str, str], dict[int, int]] = field(default_factory=dict)
    features: dict[tuple[str, str], Rows] = field(default_factory=dict)
    feature_source: dict[tuple[str, str], str] = field(default_factory=dict)
    assertions: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    psi: dict[tuple[str, str], float] = field(default_factory=dict)
    # per window operator: each window that fired (window_start, window_end, first_fire)
    windows: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def day_windows(self) -> int:
        return DAY_MS // self.window_ms


def detect(snap: Snapshot, config: DetectConfig) -> list[Finding]:
    found: list[Finding] = []
    for (pipeline, operator), rows in snap.operators.items():
        t = config.thresholds(pipeline, operator)
        found += _watermark_lag(snap, pipeline, operator, rows, t)
        found += _late_rate(pipeline, operator, rows, t)
        found += _cardinality(snap, pipeline, operator, rows, t)
        found += _zscore(snap, pipeline, operator, rows, t)
    for (pipeline, operator), fired in snap.windows.items():
        found += _missing_windows(
            snap, pipeline, operator, fired, config.thresholds(pipeline, operator)
        )
    for (pipeline, operator), last in snap.last_flush.items():
        found += _silence(snap, pipeline, operator, last, config.thresholds(pipeline, operator))
    for (pipeline, operator), flushes in snap.subtask_flush.items():
        t = config.thresholds(pipeline, operator)
        found += _subtasks_behind(pipeline, operator, flushes, t)
    for (pipeline, feature), rows in snap.features.items():
        t = config.thresholds(pipeline, feature=feature)
        source = snap.feature_source[(pipeline, feature)]
        found += _null_rate(pipeline, feature, rows, source, t)
        found += _mean_drift(snap, pipeline, feature, rows, t)
    for (pipeline, feature), psi in snap.psi.items():
        t = config.thresholds(pipeline, feature=feature)
        if psi > t.psi:
            found.append(Finding(
                ViolationType.MEAN_DRIFT, pipeline, None, feature, "psi", psi, 0.0, t.psi,
                severity_of(psi / t.psi),
                f"{pipeline}/{feature}: value distribution shifted, PSI {psi:.2f} > {t.psi}",
            ))  # fmt: skip
    for (pipeline, feature), row in snap.assertions.items():
        found += _assertions(pipeline, feature, row, config.thresholds(pipeline, feature=feature))
    return found


def _operator_freshness(
    pipeline: str, operator: str, metric: str, observed: float, threshold: float, message: str
) -> Finding:
    """A FRESHNESS finding of an operator, its severity by how far past the threshold."""
    return Finding(
        ViolationType.FRESHNESS, pipeline, operator, None, metric, observed, None, threshold,
        severity_of(observed / threshold), f"{pipeline}/{operator}{message}",
    )  # fmt: skip


def _silence(
    snap: Snapshot, pipeline: str, operator: str, last: int, t: Thresholds
) -> Iterator[Finding]:
    silent_s = (snap.at - last) / 1000
    if silent_s > t.freshness_s:
        yield _operator_freshness(
            pipeline, operator, "silence_s", silent_s, t.freshness_s,
            f" has not emitted for {silent_s:.0f} s (threshold {t.freshness_s:.0f} s)",
        )  # fmt: skip


def _subtasks_behind(
    pipeline: str, operator: str, flushes: dict[int, int], t: Thresholds
) -> Iterator[Finding]:
    """Subtasks whose last flush is more than ``subtask_behind_s`` older than their
    siblings' newest: the operator as a whole still flows, so ``_silence`` misses them."""
    if not t.subtask_behind_s:
        return
    newest = max(flushes.values())
    behind = {i: (newest - last) / 1000 for i, last in sorted(flushes.items())}
    stalled = [i for i, s in behind.items() if s > t.subtask_behind_s]
    if stalled:
        worst = max(behind[i] for i in stalled)
        yield _operator_freshness(
            pipeline, operator, "subtask_behind_s", worst, t.subtask_behind_s,
            f": subtask(s) {', '.join(map(str, stalled))} of {len(flushes)} last emitted up "
            f"to {worst:.0f} s before the others (threshold {t.subtask_behind_s:.0f} s)",
        )  # fmt: skip


def _missing_windows(
    snap: Snapshot, pipeline: str, operator: str, fired: list[dict[str, Any]], t: Thresholds
) -> Iterator[Finding]:
    """Windows missing from the operator's grid whose gap window 0 closed: the first
    window to fire after them fired in window 0. So each gap is reported once, in the
    run that could first see it."""
    if not t.missing_windows:
        return
    grid = cadence([(w["window_start"], w["window_end"]) for w in fired])
    if not grid.missing:
        return
    starts = sorted(fired, key=lambda w: w["window_start"])
    keys = [w["window_start"] for w in starts]
    closed = [
        (start, end) for start, end in grid.missing
        if starts[bisect.bisect(keys, start)]["first_fire"] >= snap.at - snap.window_ms
    ]  # fmt: skip
    if len(closed) >= t.missing_windows:
        start, end = closed[-1]
        yield _operator_freshness(
            pipeline, operator, "missing_windows", float(len(closed)),
            float(t.missing_windows),
            f": {len(closed)} window(s) never fired, the newest {_utc(start)} to "
            f"{_utc(end)}: no record arrived for those event times",
        )  # fmt: skip


def _utc(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def _watermark_lag(
    snap: Snapshot, pipeline: str, operator: str, rows: Rows, t: Thresholds
) -> Iterator[Finding]:
    lag_ms = rows.get(0, {}).get("watermark_lag_ms")
    if lag_ms is not None and lag_ms / 1000 > t.watermark_lag_s:
        lag_s = lag_ms / 1000
        yield _operator_freshness(
            pipeline, operator, "watermark_lag_s", lag_s, t.watermark_lag_s,
            f": watermark lags processing time by {lag_s:.0f} s "
            f"(threshold {t.watermark_lag_s:.0f} s)",
        )  # fmt: skip


def _late_rate(pipeline: str, operator: str, rows: Rows, t: Thresholds) -> Iterator[Finding]:
    """Records arriving behind the watermark: Flink drops them from windows (or a
    side output takes them), so a feature computed from the rest silently undercounts.
    A rising share usually means an upstream delay, or a watermark set too tight."""
    row = rows.get(0, {})
    late, inputs = row.get("late_count"), row.get("input_count") or 0
    if not t.late_rate or late is None or inputs < t.min_count:
        return
    rate = late / inputs
    if rate > t.late_rate:
        yield _operator_freshness(
            pipeline, operator, "late_rate", rate, t.late_rate,
            f": {rate:.1%} of {inputs:,} records arrived behind the watermark "
            f"(threshold {t.late_rate:.1%})",
        )  # fmt: skip


def _cardinality(
    snap: Snapshot, pipeline: str, operator: str, rows: Rows, t: Thresholds
) -> Iterator[Finding]:
    """A count (or the out/in ratio) that moved by more than the threshold against both
    the same window yesterday and the rolling median of the preceding windows. Both,
    so a daily rhythm (ruled out by yesterday) and a one-off day (ruled out by the
    median) do not alarm; an operator with no flush in the window is FRESHNESS's case."""
    if 0 not in rows:
        return
    rolling = [rows[k] for k in range(1, t.rolling_windows + 1) if k in rows]
    if len(rolling) < t.rolling_windows // 2:
        return
    yesterday = rows.get(snap.day_windows)
    for metric in ("output_count", "input_count", "output_ratio"):
        current = _metric(rows[0], metric)
        recent = [v for r in rolling if (v := _metric(r, metric)) is not None]
        if current is None or len(recent) < t.rolling_windows // 2:
            continue
        bases = [statistics.median(recent)]
        if yesterday is not None and (same := _metric(yesterday, metric)) is not None:
            bases.append(same)
        if not all(b > 0 for b in bases):
            continue
        if metric != "output_ratio" and max(current, *bases) < t.min_count:
            continue
        changes = [(current - b) / b for b in bases]
        if metric == "output_ratio" and any(c > -t.cardinality_change for c in changes):
            continue  # only a collapse of the ratio is an anomaly
        if not all(abs(c) > t.cardinality_change for c in changes):
            continue
        change = min(changes, key=abs)  # the more conservative baseline
        base = bases[changes.index(change)]
        if change < 0:
            fold, fold_threshold = (
                math.inf if current == 0 else base / current,
                1 / (1 - t.cardinality_change),
            )
        else:
            fold, fold_threshold = current / base, 1 + t.cardinality_change
        yield Finding(
            ViolationType.CARDINALITY_ANOMALY, pipeline, operator, None, metric, current, base,
            t.cardinality_change, severity_of(fold / fold_threshold),
            f"{pipeline}/{operator}: {metric} {_fmt(current)} is {change:+.0%} against "
            f"baseline {_fmt(base)} (threshold ±{t.cardinality_change:.0%})",
        )  # fmt: skip


def _metric(row: dict[str, Any], metric: str) -> float | None:
    if metric == "output_ratio":
        inputs = row.get("input_count") or 0
        return None if inputs <= 0 else float(row.get("output_count") or 0) / inputs
    value = row.get(metric)
    return None if value is None else float(value)


def _zscore(
    snap: Snapshot, pipeline: str, operator: str, rows: Rows, t: Thresholds
) -> Iterator[Finding]:
    """Output count against the same window on each of the previous 7 days."""
    if 0 not in rows:
        return
    history = [float(rows[d * snap.day_windows].get("output_count") or 0)
               for d in range(1, 8) if d * snap.day_windows in rows]  # fmt: skip
    if len(history) < t.zscore_min_days:
        return
    mean = statistics.fmean(history)
    std = max(statistics.stdev(history), t.zscore_min_relative_std * abs(mean), 1.0)
    current = float(rows[0].get("output_count") or 0)
    z = (current - mean) / std
    if abs(z) > t.zscore:
        yield Finding(
            ViolationType.ZSCORE, pipeline, operator, None, "output_count", current, mean,
            t.zscore, severity_of(abs(z) / t.zscore),
            f"{pipeline}/{operator}: output_count {_fmt(current)} has z-score {z:+.1f} "
            f"against the same window on {len(history)} previous days (mean {_fmt(mean)})",
        )  # fmt: skip


def _null_rate(
    pipeline: str, feature: str, rows: Rows, source: str, t: Thresholds
) -> Iterator[Finding]:
    row = rows.get(0)
    if row is None or not row["count"] or row["count"] < t.min_count:
        return
    rate = row["nulls"] / row["count"]
    if rate > t.null_rate:
        yield Finding(
            ViolationType.NULL_RATE, pipeline, None, feature, "null_rate", rate, None,
            t.null_rate, severity_of(rate / t.null_rate if t.null_rate else math.inf),
            f"{pipeline}/{feature}: {rate:.1%} of {row['count']} values are null "
            f"(threshold {t.null_rate:.1%}, from {source} data)",
        )  # fmt: skip


def _moments(rows: list[dict[str, Any]]) -> tuple[int, float, float] | None:
    """(n, mean, sample std) of the non-null numeric values the rows summarize."""
    n = sum(int(r["count"]) - int(r["nulls"]) for r in rows if r["sum"] is not None)
    if n < 2:
        return None
    total = sum(r["sum"] for r in rows if r["sum"] is not None)
    total_sq = sum(r["sum_sq"] for r in rows if r["sum_sq"] is not None)
    mean = total / n
    return n, mean, math.sqrt(max(total_sq - n * mean * mean, 0.0) / (n - 1))


def _mean_drift(
    snap: Snapshot, pipeline: str, feature: str, rows: Rows, t: Thresholds
) -> Iterator[Finding]:
    """Mean of the judged window against the preceding 24 hours."""
    if 0 not in rows:
        return
    current = _moments([rows[0]])
    base = _moments([r for k, r in rows.items() if 1 <= k <= snap.day_windows])
    if current is None or base is None or current[0] < t.min_count or base[0] < t.min_count:
        return
    shift = abs(current[1] - base[1])
    sigmas = shift / base[2] if base[2] > 0 else (math.inf if shift > 0 else 0.0)
    if sigmas > t.mean_drift_sigma:
        yield Finding(
            ViolationType.MEAN_DRIFT, pipeline, None, feature, "mean", current[1], base[1],
            t.mean_drift_sigma, severity_of(sigmas / t.mean_drift_sigma),
            f"{pipeline}/{feature}: mean {current[1]:.4g} is {sigmas:.1f} standard deviations "
            f"from the previous 24 h ({base[1]:.4g} ± {base[2]:.3g}; threshold "
            f"{t.mean_drift_sigma})",
        )  # fmt: skip


def _assertions(
    pipeline: str, feature: str, row: dict[str, Any], t: Thresholds
) -> Iterator[Finding]:
    count = row.get("count") or 0
    if not count:
        return
    if t.not_null and row["nulls"]:
        share = row["nulls"] / count
        yield Finding(
            ViolationType.NOT_NULL, pipeline, None, feature, "nulls", float(row["nulls"]), None,
            0.0, severity_of_share(share),
            f"{pipeline}/{feature}: {row['nulls']} of {count} values are null; "
            "the feature is declared not_null",
        )  # fmt: skip
    breaches = [(row["below"], t.min, "below min") if t.min is not None else None,
                (row["above"], t.max, "above max") if t.max is not None else None]  # fmt: skip
    out = [(n, bound, what) for n, bound, what in filter(None, breaches) if n]
    if out:
        total = sum(n for n, _, _ in out)
        worst = max(out, key=lambda b: b[0])
        detail = ", ".join(f"{n} {what} {bound:g}" for n, bound, what in out)
        yield Finding(
            ViolationType.RANGE, pipeline, None, feature, "out_of_range", float(total), None,
            float(worst[1]), severity_of_share(total / count),
            f"{pipeline}/{feature}: {total} of {count} values out of range ({detail}; "
            f"seen {_fmt(row['min'])}..{_fmt(row['max'])})",
        )  # fmt: skip


def psi(base: list[int], current: list[int]) -> float:
    """Population stability index of two histograms over the same bins; empty bins
    count as 0.01 % so one missing bin does not make it infinite."""
    nb, nc = sum(base), sum(current)
    total = 0.0
    for b, c in zip(base, current, strict=True):
        pb, pc = max(b / nb, 1e-4), max(c / nc, 1e-4)
        total += (pc - pb) * math.log(pc / pb)
    return total


def _fmt(value: float | None) -> str:
    if value is None:
        return "none"
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.4g}"
