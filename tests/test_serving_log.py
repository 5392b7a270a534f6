"""``faro skew``: a serving log in files, checked through a real `faro serve`."""

from __future__ import annotations

import datetime as dt
import json
import random
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from faro import CaptureEvent, EventType, FeatureValueType, OperatorType
from faro._dev.broker import free_port
from faro.cli import main
from faro.core.sampling import is_sampled
from faro.store.columns import events_to_table
from faro.store.writer import EventWriter
from tests.api.serving import running_api

HOUR = 3_600_000
T0 = (int(time.time() * 1000) - 6 * HOUR) // 1000 * 1000


def value(
    n: int, entity_id: str, processing: int, v: float, feature: str = "score"
) -> CaptureEvent:
    return CaptureEvent(
        f"ev-{n}", EventType.ENTITY, "p", "op-a", OperatorType.MAP, processing,
        features=[feature], entity_id=entity_id, feature_name=feature, feature_value=v,
        value_type=FeatureValueType.SCALAR_DOUBLE, event_time=processing, sample_rate=0.5,
        trace_id=f"{n:032x}",
    )  # fmt: skip


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Scores: user-1 had 10.0, then 20.0 from T0 + 1h; user-2 had 5.0; user-3 is
    sampled, yet has no value; user-4 is not sampled. Clicks: user-1 had 3.0."""
    store = tmp_path_factory.mktemp("store")
    events = [
        value(1, "user-1", T0, 10.0),
        value(2, "user-1", T0 + HOUR, 20.0),
        value(3, "user-2", T0, 5.0),
        value(4, "user-1", T0, 3.0, "clicks"),
        CaptureEvent(
            "agg",
            EventType.AGGREGATE,
            "p",
            "op-a",
            OperatorType.MAP,
            T0 + HOUR,
            features=["score"],
            input_count=3,
            output_count=3,
        ),
    ]
    EventWriter(store, "test").write(events_to_table(events))
    with running_api(store) as url:
        yield url


def serving_log(n: int) -> tuple[list[tuple[str, int, float]], dict[str, list[int]]]:
    """``n`` reads after T0 + 1h and what each one is: a served value that is right,
    outdated (user-1's old 10.0), wrong, or of an entity never captured."""
    rng = random.Random(n)
    rows: list[tuple[str, int, float]] = []
    kinds: dict[str, list[int]] = {
        "match": [], "outdated": [], "wrong": [], "missing": [], "not sampled": []
    }  # fmt: skip
    for i in range(n):
        at = T0 + HOUR + rng.randrange(2 * HOUR)
        entity_id, served, kind = rng.choice([
            ("user-1", 20.0, "match"), ("user-2", 5.0, "match"), ("user-1", 10.0, "outdated"),
            ("user-2", 5.5, "wrong"), ("user-3", 1.0, "missing"), ("user-4", 1.0, "not sampled"),
        ])  # fmt: skip
        rows.append((entity_id, at, served))
        kinds[kind].append(i)
    return rows, kinds


@pytest.mark.parametrize("suffix", ["parquet", "csv"])
def test_a_log_of_several_chunks_is_counted_row_by_row(
    api: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], suffix: str
) -> None:
    rows, kinds = serving_log(25_000)  # three requests of at most 10,000 rows, or more
    log = tmp_path / f"predictions.{suffix}"
    table = pa.table({
        "user": [r[0] for r in rows],
        "ts": pa.array([r[1] for r in rows], pa.timestamp("ms")),  # no zone: UTC
        "score": [r[2] for r in rows],
        "model": ["ranker-v2"] * len(rows),  # a column faro does not read
    })  # fmt: skip
    if suffix == "parquet":
        pq.write_table(table, log, row_group_size=4_000)
    else:  # streamed in blocks, each cut into requests
        pa_csv.write_csv(table, log)
    out = tmp_path / "mismatches.jsonl"
    argv = ["skew", str(log), "--feature", "score", "--pipeline", "p", "--api", api,
            "--entity-column", "user", "--time-column", "ts", "--mismatches", str(out)]  # fmt: skip
    assert is_sampled("user-3", 0.5) and not is_sampled("user-4", 0.5)  # as the log has them
    not_captured = len(kinds["missing"]) + len(kinds["not sampled"])
    assert main([*argv, "--missing", str(tmp_path / "missing.jsonl")]) == 0
    printed = capsys.readouterr()
    requests = printed.err.count("checked ")
    assert requests == 3 if suffix == "parquet" else requests >= 3
    counts = {line.split()[0]: line.split()[1] for line in printed.out.splitlines()[1:3]}
    assert counts == {"rows": "25,000", "compared": f"{25_000 - not_captured:,}"}
    mismatched = len(kinds["outdated"]) + len(kinds["wrong"])
    assert f"mismatched        {mismatched:>12,}" in printed.out
    lags = [rows[i][1] - (T0 + HOUR) for i in kinds["outdated"]]  # replaced at T0 + 1h
    assert (
        f"of them outdated{len(kinds['outdated']):>12,}   (a value the pipeline had replaced; "
        f"by {statistics.median(lags) / 1000:,.1f} s median, {max(lags) / 1000:,.1f} s at most)"
    ) in printed.out
    assert f"not captured        {not_captured:>12,}" in printed.out
    assert f"  not sampled       {len(kinds['not sampled']):>12,}" in printed.out
    assert f"  missing           {len(kinds['missing']):>12,}" in printed.out
    missing = [json.loads(line) for line in (tmp_path / "missing.jsonl").read_text().splitlines()]
    assert [(m["index"], m["entity_id"], m["at"]) for m in missing] == [
        (i, "user-3", rows[i][1]) for i in kinds["missing"]
    ]

    hours: dict[int, list[int]] = {}
    for kind, positions in kinds.items():
        for i in positions:
            at = rows[i][1]
            counts = hours.setdefault(at - at % HOUR, [0, 0, 0])
            counts[0] += kind not in ("missing", "not sampled")
            counts[1] += kind in ("outdated", "wrong")
            counts[2] += kind == "outdated"
    table = [line for line in printed.out.split("hour (UTC)")[1].splitlines()[1:]
             if line[:1].isdigit()]  # then the files' names  # fmt: skip
    assert table == [
        f"{dt.datetime.fromtimestamp(start / 1000, dt.timezone.utc):%Y-%m-%d %H:%M}  "
        f"{n:>12,}{bad:>12,}{old:>10,}"
        for start, (n, bad, old) in sorted(hours.items())
    ]

    found = [json.loads(line) for line in out.read_text().splitlines()]
    assert [m["index"] for m in found] == sorted(kinds["outdated"] + kinds["wrong"])
    for m in found:
        entity_id, at, served = rows[m["index"]]
        assert (m["entity_id"], m["at"], m["served"]) == (entity_id, at, served)
        if served == 10.0:  # outdated since user-1's 20.0 was processed
            assert (m["served_processed_at"], m["outdated_ms"]) == (T0, at - (T0 + HOUR))
        else:
            assert m["served_processed_at"] is None and m["captured"]["value"] == 5.0

    rate = mismatched / (25_000 - not_captured)
    assert main([*argv, "--max-mismatch-rate", str(rate + 0.01)]) == 0
    assert main([*argv, "--max-mismatch-rate", str(rate - 0.01)]) == 1
    assert "exceeds" in capsys.readouterr().err


def test_a_csv_log_with_iso_times_and_the_default_columns(
    api: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def iso(ms: int) -> str:
        return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).isoformat()

    log = tmp_path / "log.csv"
    log.write_text(
        "entity_id,at,score\n"
        f"user-1,{iso(T0 + 30 * 60_000)},10.0\n"  # before the update: right then
        f"user-1,{iso(T0 + 2 * HOUR)},10.0\n"  # after it: outdated
    )
    assert main(["skew", str(log), "--feature", "score", "--pipeline", "p", "--api", api]) == 0
    out = capsys.readouterr().out
    assert "  matched                      1" in out and "of them outdated           1" in out


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (
            ["--entity-column", "user"],
            "has no column 'user'; its columns: entity_id, at, score, wait",
        ),
        (["--pipeline", "q"], "answered 404: unknown pipeline 'q'"),
        (["--time-column", "wait"], "the time column 'wait' is double"),
        (["--time-column", "score"], "must all differ, got entity_id, score, score"),
        (["--feature", "clicks", "--value-column", "score"], "each feature's values are read"),
    ],
)
def test_mistakes_are_named_with_the_fix(
    api: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], says: str
) -> None:
    log = tmp_path / "log.csv"
    log.write_text(f"entity_id,at,score,wait\nuser-1,{T0 + 2 * HOUR},20.0,0.5\n")
    base = ["skew", str(log), "--feature", "score", "--pipeline", "p", "--api", api]
    assert main([*base, *argv]) == 2
    assert says in capsys.readouterr().err


def test_a_log_with_a_column_per_feature_is_checked_feature_by_feature(
    api: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "predictions.jsonl"
    at = T0 + 2 * HOUR
    log.write_text(
        json.dumps({"entity_id": "user-1", "at": at, "score": 20.0, "clicks": 4.0}) + "\n"
        + json.dumps({"entity_id": "user-2", "at": at, "score": 5.0, "clicks": 1.0}) + "\n"
    )  # fmt: skip
    out = tmp_path / "mismatches.jsonl"
    argv = ["skew", str(log), "--feature", "score", "--feature", "clicks", "--pipeline", "p",
            "--api", api, "--mismatches", str(out)]  # fmt: skip
    assert main([*argv, "--max-mismatch-rate", "0.5"]) == 1
    printed = capsys.readouterr()
    score, clicks = printed.out.split("clicks of p, served against captured:")
    assert "score of p, served against captured:" in score
    assert (
        "  matched                      2" in score and "  missing                      0" in score
    )
    # user-1's clicks were never 4.0; user-2 is sampled, yet has no clicks value
    assert (
        "  mismatched                   1" in clicks
        and "  missing                      1" in clicks
    )
    assert "clicks: mismatch rate 100.00% exceeds 50.00%" in printed.err
    assert "score:" not in printed.err
    [m] = [json.loads(line) for line in out.read_text().splitlines()]
    assert (m["feature"], m["index"], m["served"], m["captured"]["value"]) == (
        "clicks",
        0,
        4.0,
        3.0,
    )
    assert m["served_processed_at"] is None


def test_an_api_that_is_not_there_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "log.csv"
    log.write_text("entity_id,at,score\nuser-1,1,1.0\n")
    api = f"http://127.0.0.1:{free_port()}"
    assert main(["skew", str(log), "--feature", "score", "--pipeline", "p", "--api", api]) == 2
    assert f"cannot reach the API at {api}" in capsys.readouterr().err
