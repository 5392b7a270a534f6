"""Detection over a simulated week plus a day with known faults (tests/detect/simulation.py).

Detection runs every 10 minutes of the judged day, with a 10-minute window, so
"within one detection interval" means: the first run whose window lies wholly
in the fault opens the violation, the first run whose window lies wholly after
it resolves the violation.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from faro import CaptureEvent, EventType, FeatureValueType, OperatorType
from faro.detect import DetectConfig, Detector, Transition, ledger
from faro.store.columns import events_to_table
from faro.store.writer import EventWriter
from tests.detect import simulation as sim
from tests.support import tomllib

INTERVAL = 10 * sim.MIN


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[tuple[int, Transition]]]:
    data_dir = tmp_path_factory.mktemp("simulated-store")
    sim.build(data_dir)
    detector = Detector(data_dir, DetectConfig(tomllib.loads(sim.THRESHOLDS_TOML)))
    seen = []
    for k in range(1, sim.DAY // INTERVAL + 1):
        at = sim.JUDGED_DAY + k * INTERVAL
        seen += [(at, t) for t in detector.run(at).transitions]
    return data_dir, seen


# Expected type and opening severity per fault, from the injected magnitude and the
# documented scales (x threshold: <1.25 LOW, <2 MEDIUM, <4 HIGH, else CRITICAL;
# assertions by breaching share: <1 % LOW, <5 % MEDIUM, <20 % HIGH).
EXPECTED = {
    # silent from 10:00, last flush 09:59:30; first run past 300 s is 10:10: 630 s = 2.1x
    "p-silent": ("FRESHNESS", "silence_s", "HIGH"),
    # output 20 % of normal: 5-fold drop against the 2-fold a 50 % threshold allows = 2.5x
    "p-drop": ("CARDINALITY_ANOMALY", "output_count", "HIGH"),
    # 30 % null against 5 % = 6x
    "p-null": ("NULL_RATE", "null_rate", "CRITICAL"),
    # mean moved by 3 sd against 2 = 1.5x
    "p-mean": ("MEAN_DRIFT", "mean", "MEDIUM"),
    # 10 % of values at -1 with min 0
    "p-range": ("RANGE", "out_of_range", "HIGH"),
    # 3 % of values null where not_null is declared
    "p-notnull": ("NOT_NULL", "nulls", "MEDIUM"),
    # 120 records/min at 03:00 where 7 days say ~20: z far beyond 4x3
    "p-night": ("ZSCORE", "output_count", "CRITICAL"),
    # subtask 1 of 2 stops after 12:59:31; at 13:10 subtask 0 last flushed 13:09:30,
    # 599 s later, against 300 = 2.0x (just under)
    "p-subtask": ("FRESHNESS", "subtask_behind_s", "MEDIUM"),
    # 15 % of each minute's input late (rounded) against 5 % = 3x
    "p-late": ("FRESHNESS", "late_rate", "HIGH"),
}


@pytest.mark.parametrize("fault", sim.FAULTS, ids=lambda f: f.pipeline)
def test_each_fault_is_detected_in_time_with_its_type_and_severity(day, fault: sim.Fault):
    _, seen = day
    kind, metric, severity = EXPECTED[fault.pipeline]
    opened = [(at, t.violation) for at, t in seen if t.status == "OPEN"
              and t.violation.pipeline_id == fault.pipeline and t.violation.type == kind
              and t.violation.metric == metric]  # fmt: skip
    assert len(opened) == 1, opened
    at, violation = opened[0]
    latest = fault.start + INTERVAL
    if kind == "FRESHNESS":
        latest += 300_000  # it must first have been silent for the threshold
    assert fault.start < at <= latest
    assert violation.severity == severity, violation.message
    assert violation.opened_at == at and violation.window_end == at
    if fault.pipeline in ("p-null", "p-notnull", "p-range", "p-mean"):
        assert violation.feature == sim.FEATURE and violation.operator_id is None
    else:
        assert violation.operator_id == sim.OPERATOR


@pytest.mark.parametrize("fault", sim.FAULTS, ids=lambda f: f.pipeline)
def test_every_violation_of_a_fault_resolves_within_one_interval_of_its_end(day, fault):
    _, seen = day
    ids = {t.violation.violation_id for _, t in seen if t.violation.pipeline_id == fault.pipeline}
    resolved = {t.violation.violation_id: at for at, t in seen if t.status == "RESOLVED"}
    assert ids and ids <= set(resolved)
    for vid in ids:
        assert fault.end < resolved[vid] <= fault.end + INTERVAL


def test_nothing_opens_outside_a_fault(day):
    """The clean pipeline all day, and every pipeline outside its fault: zero violations."""
    _, seen = day
    faults = {f.pipeline: f for f in sim.FAULTS}
    stray = []
    for at, t in seen:
        fault = faults.get(t.violation.pipeline_id)
        during = fault is not None and fault.start < at <= fault.end + INTERVAL
        if t.status == "OPEN" and not during:
            stray.append(t.violation.message)
    assert stray == []
    assert not [t for _, t in seen if t.violation.pipeline_id == sim.CLEAN]


def test_each_violation_is_stored_once_and_rerunning_a_time_adds_nothing(day):
    data_dir, seen = day
    stored = ledger.read(data_dir)
    assert len(stored) == len({t.violation.violation_id for _, t in seen})
    assert len({v.violation_id for v in stored}) == len(stored)
    assert all(not v.is_open for v in stored)
    fault = next(f for f in sim.FAULTS if f.pipeline == "p-null")
    detector = Detector(data_dir, DetectConfig(tomllib.loads(sim.THRESHOLDS_TOML)))
    # Back in time, into the fault: the condition holds, but its episode is stored already.
    again = detector.run(fault.start + INTERVAL)
    assert [f.type.value for f in again.findings if f.pipeline_id == "p-null"] == ["NULL_RATE"]
    assert again.transitions == []
    assert len(ledger.read(data_dir)) == len(stored)


def test_a_store_younger_than_the_baseline_is_judged_without_one(tmp_path: Path):
    """Values only in the judged window (a fresh store, a first demo): no baseline
    to bin them against, so no distribution check; every other check still runs."""
    at = sim.JUDGED_DAY + INTERVAL
    values = [
        CaptureEvent(
            f"e{i}", EventType.ENTITY, "fresh", "op", OperatorType.PROCESS, at - 60_000 + i,
            features=["f"], entity_id=f"u{i}", feature_name="f",
            feature_value=None if i % 4 else 1.0,
            value_type=FeatureValueType.SCALAR_DOUBLE, event_time=at - 70_000, sample_rate=1.0,
            trace_id=f"t{i}",
        )
        for i in range(200)
    ]  # fmt: skip
    EventWriter(tmp_path, "test").write(events_to_table(values))
    detector = Detector(tmp_path, DetectConfig({}))
    base, current = (at - sim.DAY - INTERVAL, at - INTERVAL), (at - INTERVAL, at)
    assert detector.queries.value_bins("fresh", "f", base, current) == []
    findings = detector.run(at).findings
    # three in four values are null: the null-rate check saw the window
    assert [(f.type.value, f.pipeline_id) for f in findings] == [("NULL_RATE", "fresh")]


def test_windows_that_never_fired_are_one_violation_opened_when_the_gap_closes(tmp_path: Path):
    """A one-minute window operator (two keys) with no fire for minutes 30 and 31:
    the run whose window holds the first fire after the gap opens one FRESHNESS
    violation naming both windows, and the next run resolves it."""
    minute, start = sim.MIN, sim.JUDGED_DAY
    gap = {30, 31}
    fires = [
        CaptureEvent(
            f"w{m}-{key}", EventType.AGGREGATE, "wins", "agg", OperatorType.WINDOW,
            start + (m + 1) * minute + 5_000 + key, window_start=start + m * minute,
            window_end=start + (m + 1) * minute, input_count=40, output_count=1,
        )
        for m in range(60) if m not in gap for key in (0, 1)
    ]  # fmt: skip
    EventWriter(tmp_path, "test").write(events_to_table(fires))
    detector = Detector(tmp_path, DetectConfig({}))  # 5-minute windows
    opened, resolved = [], []
    for k in range(1, 13):
        at = start + k * 5 * minute
        for t in detector.run(at).transitions:
            if t.violation.metric == "missing_windows":
                (opened if t.status == "OPEN" else resolved).append((at, t.violation))
    # window 32 first fired at 33 min 5 s: inside the run at 35 min
    [(at, violation)] = opened
    assert at == start + 35 * minute
    assert (violation.type, violation.operator_id, violation.observed) == ("FRESHNESS", "agg", 2.0)
    assert violation.severity == "HIGH"  # 2 windows: twice the threshold of 1
    newest = dt.datetime.fromtimestamp((start + 31 * minute) / 1000, dt.timezone.utc)
    assert newest.strftime("%Y-%m-%d %H:%M:%SZ") in violation.message
    assert [at for at, _ in resolved] == [start + 40 * minute]
    # the check can be turned off per operator
    quiet = DetectConfig(tomllib.loads("[pipelines.wins.operators.agg]\nmissing_windows = 0"))
    assert not [
        f for f in Detector(tmp_path, quiet).run(start + 35 * minute).findings
        if f.metric == "missing_windows"
    ]  # fmt: skip


def test_a_subtask_quiet_for_a_day_is_taken_as_scaled_away(tmp_path: Path):
    """Of three subtasks, one stopped 20 minutes ago and one two days ago (the job
    was rescaled): only the first trails its siblings."""
    at = sim.JUDGED_DAY
    last = {0: at - 30_000, 1: at - 20 * sim.MIN, 2: at - 2 * sim.DAY}
    flushes = [
        CaptureEvent(
            f"a{i}-{k}", EventType.AGGREGATE, "scaled", "op", OperatorType.MAP,
            t - k * sim.MIN, subtask_index=i, input_count=10, output_count=10,
        )
        for i, t in last.items() for k in range(30)
    ]  # fmt: skip
    EventWriter(tmp_path, "test").write(events_to_table(flushes))
    findings = Detector(tmp_path, DetectConfig({})).run(at).findings
    behind = [f for f in findings if f.metric == "subtask_behind_s"]
    assert [(f.operator_id, f.observed) for f in behind] == [("op", (last[0] - last[1]) / 1000)]
    assert "subtask(s) 1 of 2" in behind[0].message
