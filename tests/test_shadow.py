"""``faro compare``: a version in shadow against production, through a real `faro serve`."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from faro import CaptureEvent, EventType, FeatureValueType, OperatorType
from faro._dev.broker import free_port
from faro.cli import main
from faro.core.events import FeatureStats
from faro.core.windows import format_time
from faro.store.columns import events_to_table
from faro.store.writer import EventWriter
from tests.api.serving import running_api

MIN, HOUR = 60_000, 3_600_000
UNTIL = (int(time.time() * 1000) // HOUR) * HOUR - 5 * MIN
USERS = [f"user-{i}" for i in range(40)]
WINDOWS = [UNTIL - HOUR + 5 * MIN * k - 1 for k in range(12)]  # twelve 5-minute windows
DIFFERENT = {("user-3", WINDOWS[4]), ("user-7", WINDOWS[9]), ("user-8", WINDOWS[9])}
LOST_FIRST = ("user-5", WINDOWS[2])
LOST = {LOST_FIRST, ("user-11", WINDOWS[6])}


def window_result(pipeline: str, entity_id: str, et: int, value: float) -> CaptureEvent:
    return CaptureEvent(
        f"{pipeline}-{entity_id}-{et}", EventType.ENTITY, pipeline, "clicks-window",
        OperatorType.WINDOW, et + 2_000 + (500 if pipeline == "v2" else 0),
        features=["clicks_5m"], entity_id=entity_id, feature_name="clicks_5m",
        feature_value=value, value_type=FeatureValueType.SCALAR_DOUBLE, event_time=et,
        sample_rate=1.0,
    )  # fmt: skip


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Version 1 and version 2 of a pipeline: v2 differs on three records and lost two."""
    events = []
    for et in WINDOWS:
        for n, user in enumerate(USERS):
            value = float((n * 7 + et // MIN) % 23)
            events.append(window_result("v1", user, et, value))
            if (user, et) not in LOST:
                events.append(window_result("v2", user, et, value + ((user, et) in DIFFERENT)))
    for pipeline in ("v1", "v2"):  # each window's fires, as the window operator reports them
        for et in WINDOWS:
            values = [e.feature_value for e in events
                      if e.pipeline_id == pipeline and e.event_time == et]  # fmt: skip
            events.append(CaptureEvent(
                f"{pipeline}-fire-{et}", EventType.AGGREGATE, pipeline, "clicks-window",
                OperatorType.WINDOW, et + 2_000, features=["clicks_5m"],
                input_count=len(values), output_count=len(values),
                window_start=et + 1 - 5 * MIN, window_end=et + 1,
                feature_stats=[FeatureStats("clicks_5m", count=len(values), sum=sum(values),
                                            min=min(values), max=max(values))],
            ))  # fmt: skip
    store = tmp_path_factory.mktemp("store")
    EventWriter(store, "test").write(events_to_table(events))
    with running_api(store) as url:
        yield url


def compare(api: str, *options: str) -> list[str]:
    return ["compare", "--feature", "clicks_5m", "--pipeline", "v1", "--against", "v2",
            "--window", "2h", "--until", str(UNTIL), "--api", api, *options]  # fmt: skip


def test_the_summary_and_the_records_say_what_the_api_found(
    api: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records = tmp_path / "records.jsonl"
    assert main(compare(api, "--records", str(records))) == 0
    out = capsys.readouterr().out
    compared = len(WINDOWS) * len(USERS) - len(LOST)
    assert f"compared        {compared:>10,}" in out
    assert f"matched         {compared - len(DIFFERENT):>10,}" in out
    assert f"mismatched      {len(DIFFERENT):>10,}   {len(DIFFERENT) / compared:.3%}" in out
    assert "largest difference 1" in out
    assert (
        f"v2/clicks-window minus v1/clicks-window, on average: {len(DIFFERENT) / compared:+g}"
        in out
    )
    assert f"only in v1/clicks-window: {len(LOST)}; only in v2/clicks-window: 0" in out
    assert "v2/clicks-window processes a record +0.500 s after v1/clicks-window" in out
    rows = [json.loads(line) for line in records.read_text().splitlines()]
    assert {(r["entity_id"], r["event_time"]) for r in rows if r["kind"] == "mismatched"} == (
        DIFFERENT
    )
    assert {(r["entity_id"], r["event_time"]) for r in rows if r["kind"] == "one_sided"} == LOST
    assert all(r["against_value"] == r["value"] + 1 for r in rows if r["kind"] == "mismatched")
    # the hours listed are those with a mismatched or one-sided record
    hours = {(et // HOUR) * HOUR for _, et in DIFFERENT | LOST}
    listed = [line.split()[0] for line in out.splitlines() if line.startswith("    ")]
    assert listed == [format_time(h) for h in sorted(hours)]


@pytest.mark.parametrize(
    ("options", "code", "says"),
    [
        (["--max-mismatch-rate", "0.01"], 0, None),
        (["--max-mismatch-rate", "0.005"], 1, "mismatch rate 0.628% exceeds 0.500%"),
        (["--max-one-sided-rate", "0.005"], 0, None),
        (["--max-one-sided-rate", "0.004"], 1, "2 records only one side captured (0.417%)"),
    ],
)
def test_the_gate_holds_at_its_thresholds(
    api: str,
    capsys: pytest.CaptureFixture[str],
    options: list[str],
    code: int,
    says: str | None,
) -> None:
    assert main(compare(api, *options)) == code
    err = capsys.readouterr().err
    assert (says in err) if says else err == ""


def test_window_by_window_needs_no_entity_values(
    api: str, capsys: pytest.CaptureFixture[str]
) -> None:
    differing = sorted({et for _, et in DIFFERENT | LOST})
    assert main(compare(api, "--windows", "--max-mismatch-rate", "0.5")) == 0
    out = capsys.readouterr().out
    assert f"compared        {len(WINDOWS):>10,}   windows both fired" in out
    assert f"mismatched      {len(differing):>10,}   {len(differing) / len(WINDOWS):.3%}" in out
    listed = [line.split()[0] for line in out.splitlines() if line.startswith("    ")]
    assert listed == [format_time(et + 1 - 5 * MIN) for et in differing]
    lost = f"{format_time(LOST_FIRST[1] + 1 - 5 * MIN)} to {format_time(LOST_FIRST[1] + 1)}: "
    assert lost + f"input_count {len(USERS)} against {len(USERS) - 1}" in out
    assert main(compare(api, "--windows", "--max-mismatch-rate", "0.3")) == 1
    assert f"mismatch rate {len(differing) / len(WINDOWS):.3%} exceeds 30.000%" in (
        capsys.readouterr().err
    )


def test_a_gate_that_compared_nothing_fails(api: str, capsys: pytest.CaptureFixture[str]) -> None:
    options = ["--operator", "clicks-window", "--against-operator", "clicks-window"]
    earlier = [a if a != str(UNTIL) else str(UNTIL - 24 * HOUR) for a in compare(api, *options)]
    assert main(earlier) == 0  # no gate: a report of nothing
    assert main([*earlier, "--max-mismatch-rate", "0.01"]) == 1
    assert "nothing was compared" in capsys.readouterr().err


def test_a_refusal_and_an_absent_api_are_named(
    api: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*compare(api)[:6], "v3", *compare(api)[7:]]) == 2
    assert "answered 404: unknown pipeline 'v3'" in capsys.readouterr().err
    assert main(compare(f"http://127.0.0.1:{free_port()}")) == 2
    assert "cannot reach the API" in capsys.readouterr().err
