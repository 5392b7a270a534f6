"""Single detectors on hand-made snapshots: the formulas of docs/violations.md."""

from __future__ import annotations

import math

from faro.detect import DetectConfig, Severity
from faro.detect.detectors import Snapshot, detect, psi, severity_of

AT = 1_795_000_000_000
W = 5 * 60_000


def _operator_rows(values: dict[int, tuple[int, int]], lag_ms: float | None = None) -> dict:
    return {
        k: {"input_count": i, "output_count": o, "flushes": 5, "watermark_lag_ms": lag_ms}
        for k, (i, o) in values.items()
    }


def test_watermark_lag_beyond_threshold_is_freshness():
    snap = Snapshot(AT, W, operators={("p", "op"): _operator_rows({0: (100, 100)}, 1_500_000.0)})
    [finding] = detect(snap, DetectConfig())
    assert (finding.type.value, finding.metric) == ("FRESHNESS", "watermark_lag_s")
    assert finding.observed == 1500 and finding.threshold == 600
    assert finding.severity is Severity.HIGH  # 2.5x


def test_a_share_of_late_records_beyond_threshold_is_freshness():
    def found(inputs: int, late: int | None, **thresholds: object) -> list:
        rows = {0: {"input_count": inputs, "output_count": inputs, "late_count": late}}
        config = DetectConfig({"detect": {}, "defaults": thresholds} if thresholds else None)
        return detect(Snapshot(AT, W, operators={("p", "op"): rows}), config)

    [finding] = found(400, 70)
    assert (finding.type.value, finding.metric, finding.operator_id) == (
        "FRESHNESS", "late_rate", "op"
    )
    assert finding.observed == 70 / 400 and finding.threshold == 0.05
    assert finding.severity is Severity.HIGH  # 3.5x
    assert found(400, 20) == []  # 5 %: at the threshold, not past it
    assert found(400, None) == []  # an operator that cannot see late records
    assert found(19, 19) == []  # fewer records than min_count
    assert found(400, 70, late_rate=0) == []  # off
    [stricter] = found(400, 20, late_rate=0.01)
    assert stricter.severity is Severity.CRITICAL  # 5x


def test_a_daily_rhythm_is_not_a_cardinality_anomaly_but_a_one_off_jump_is():
    day = 86_400_000 // W
    # the last two hours ran at 100 a window; now 30, and yesterday at this time also 30
    rhythm = {k: (100, 100) for k in range(1, 25)} | {0: (30, 30), day: (30, 30)}
    snap = Snapshot(AT, W, operators={("p", "op"): _operator_rows(rhythm)})
    assert detect(snap, DetectConfig()) == []
    # the same drop with yesterday at 100: against both baselines, -70 %
    one_off = rhythm | {day: (100, 100)}
    snap = Snapshot(AT, W, operators={("p", "op"): _operator_rows(one_off)})
    found = {(f.type.value, f.metric) for f in detect(snap, DetectConfig())}
    assert found == {
        ("CARDINALITY_ANOMALY", "output_count"),
        ("CARDINALITY_ANOMALY", "input_count"),
    }


def test_psi_of_equal_histograms_is_zero_and_grows_with_shift():
    same = [10] * 10
    assert psi(same, same) == 0
    shifted = [5] * 5 + [15] * 5
    before, after = [0.1] * 10, [0.05] * 5 + [0.15] * 5
    expected = sum((q - p) * math.log(q / p) for p, q in zip(before, after, strict=True))
    assert math.isclose(psi(same, shifted), expected)


def test_severity_scale():
    assert [severity_of(x).value for x in (1.1, 1.25, 1.99, 2, 3.99, 4, math.inf)] == [
        "LOW", "MEDIUM", "MEDIUM", "HIGH", "HIGH", "CRITICAL", "CRITICAL",
    ]  # fmt: skip


def test_missing_windows_alarm_from_their_threshold_and_only_once_the_gap_closed():
    step = 10_000
    fired = [
        {"window_start": AT - 3 * W + i * step, "window_end": AT - 3 * W + (i + 1) * step,
         "first_fire": AT - 3 * W + (i + 1) * step + 500}
        for i in range(3 * W // step - 1) if i not in (10, 11, 12)
    ]  # fmt: skip
    gap_closed = fired[10]["first_fire"]  # window 13, the first after the gap
    snap = Snapshot(gap_closed + W // 2, W, windows={("p", "agg"): fired})
    [finding] = detect(snap, DetectConfig())
    assert (finding.metric, finding.observed, finding.severity) == (
        "missing_windows",
        3.0,
        Severity.HIGH,
    )
    lenient = DetectConfig({"defaults": {"missing_windows": 4}})
    assert detect(snap, lenient) == []
    later = Snapshot(gap_closed + W + 1, W, windows={("p", "agg"): fired})
    assert detect(later, DetectConfig()) == []  # reported by the run before


def test_subtasks_behind_their_siblings_are_freshness_of_the_operator():
    s = 1000
    flushes = {0: AT - 10 * s, 1: AT - 311 * s, 2: AT - 210 * s, 3: AT - 910 * s}
    snap = Snapshot(AT, W, subtask_flush={("p", "op"): flushes})
    [finding] = detect(snap, DetectConfig())
    assert (finding.type.value, finding.metric, finding.operator_id) == (
        "FRESHNESS", "subtask_behind_s", "op",
    )  # fmt: skip
    assert finding.observed == 900 and finding.threshold == 300
    assert finding.severity is Severity.HIGH  # 3x
    assert "subtask(s) 1, 3 of 4" in finding.message
    # per operator, the threshold moves; 0 turns the check off
    looser = DetectConfig({"pipelines": {"p": {"operators": {"op": {"subtask_behind_s": 1000}}}}})
    assert detect(snap, looser) == []
    off = DetectConfig({"defaults": {"subtask_behind_s": 0}})
    assert detect(snap, off) == []
    # one subtask has no siblings to trail
    alone = Snapshot(AT, W, subtask_flush={("p", "op"): {0: AT - 910 * s}})
    assert detect(alone, DetectConfig()) == []
