"""/pipelines/{id}/subtasks against flushes generated with one subtask stopped, one
hot and one whose watermark stuck; the expected answers are computed here from the
events."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from faro import CaptureEvent, EventType, OperatorType
from tests.api.serving import client_over

NOW = int(time.time() * 1000) // 60_000 * 60_000
MIN = 60_000
STALE_S = 60.0  # the API's default FARO_STALE_AFTER_S
STOPPED, HOT, STUCK = 2, 3, 1  # subtasks of "agg"
STOPPED_AT = 12  # minutes before NOW
STUCK_AT = 30


def generate(seed: int = 5) -> list[CaptureEvent]:
    """``agg`` (a window operator, 4 subtasks) fires each minute for 50 minutes:
    subtask 2 stops 12 minutes before NOW, subtask 3 takes about five times the
    records of the others, subtask 1's watermark stops moving 30 minutes before NOW,
    and subtask 0's goes back at its last fire.
    A fifth subtask last fired two hours ago. ``parse`` (2 subtasks) counts late
    records and carries no watermark; ``solo`` has one subtask."""
    rng = random.Random(seed)
    events: list[CaptureEvent] = []

    def flush(op: str, kind: OperatorType, at: int, subtask: int, **kw: int | None) -> None:
        events.append(CaptureEvent(
            f"f{len(events)}", EventType.AGGREGATE, "orders", op, kind, at,
            subtask_index=subtask, **kw,
        ))  # fmt: skip

    for minute in range(50):
        at = NOW - minute * MIN - rng.randrange(1_000, 50_000)
        for subtask in range(4):
            if subtask == STOPPED and minute < STOPPED_AT:
                continue
            n = rng.randrange(100, 200) * (5 if subtask == HOT else 1)
            lag = rng.randrange(2_000, 9_000)
            mark = at - lag
            if subtask == STUCK and minute < STUCK_AT:
                mark = NOW - STUCK_AT * MIN - 5_000
            elif subtask == 0 and minute == 0:
                mark = at - 25 * MIN  # restored from a checkpoint: its watermark went back
            flush("agg", OperatorType.WINDOW, at + subtask, subtask, input_count=n,
                  output_count=rng.randrange(1, 10), watermark=mark)  # fmt: skip
        for subtask in (0, 1):
            n = rng.randrange(1000, 2000)
            flush("parse", OperatorType.MAP, at, subtask, input_count=n, output_count=n,
                  late_count=rng.randrange(0, 5))  # fmt: skip
        flush("solo", OperatorType.PROCESS, at, 0, input_count=7, output_count=7)
    flush("agg", OperatorType.WINDOW, NOW - 120 * MIN, 4, input_count=9, output_count=1)
    return events


EVENTS = generate()


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with client_over(EVENTS, tmp_path_factory.mktemp("store")) as c:
        yield c


def _expected(op: str, since: int, until: int) -> dict[int, dict]:
    """Each subtask of ``op`` that flushed in [since, until), computed from EVENTS."""
    flushes: dict[int, list[CaptureEvent]] = {}
    for e in EVENTS:
        if e.operator_id == op and since <= e.processing_time < until:
            flushes.setdefault(e.subtask_index, []).append(e)
    newest = max(e.processing_time for es in flushes.values() for e in es)
    out = {}
    for subtask, es in flushes.items():
        last = max(e.processing_time for e in es)
        marked = [e for e in es if e.watermark is not None]
        carrier = max(marked, key=lambda e: e.processing_time) if marked else None
        late = [e.late_count for e in es if e.late_count is not None]
        out[subtask] = {
            "subtask_index": subtask,
            "last_flush": last,
            "seconds_since_flush": pytest.approx((until - last) / 1000),
            "behind_seconds": pytest.approx((newest - last) / 1000),
            "watermark": carrier.watermark if carrier else None,
            "watermark_lag_seconds": pytest.approx(
                (carrier.processing_time - carrier.watermark) / 1000
            ) if carrier else None,
            "input_count": sum(e.input_count or 0 for e in es),
            "output_count": sum(e.output_count or 0 for e in es),
            "late_count": sum(late) if late else None,
            "flushes": len(es),
        }  # fmt: skip
    total = sum(s["input_count"] for s in out.values())
    for s in out.values():
        s["input_share"] = pytest.approx(s["input_count"] / total)
    return out


def _get(client: TestClient, **params: object) -> dict:
    answer = client.get("/pipelines/orders/subtasks", params={"until": NOW, **params})
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_each_subtask_of_a_window_operator_side_by_side(client: TestClient) -> None:
    body = _get(client, window="1h")
    assert (body["at"], body["stale_after_seconds"]) == (NOW, STALE_S)
    agg = {o["operator_id"]: o for o in body["operators"]}["agg"]
    expected = _expected("agg", NOW - 60 * MIN, NOW)
    assert sorted(expected) == [0, 1, 2, 3]  # the fifth fired before the window
    assert agg["operator_type"] == "WINDOW" and agg["subtasks"] == 4
    assert agg["detail"] == [expected[i] for i in range(4)]
    # the stopped subtask is the one behind its siblings by the stale threshold or more
    newest = max(s["last_flush"] for s in expected.values())
    behind = {i: (newest - s["last_flush"]) / 1000 for i, s in expected.items()}
    assert agg["stalled"] == [i for i in range(4) if behind[i] >= STALE_S] == [STOPPED]
    inputs = {i: s["input_count"] for i, s in expected.items()}
    assert agg["busiest_subtask"] == HOT == max(inputs, key=inputs.__getitem__)
    assert agg["input_skew"] == pytest.approx(max(inputs.values()) * 4 / sum(inputs.values()))
    marks = {i: s["watermark"] for i, s in expected.items()}
    assert agg["slowest_watermark_subtask"] == STUCK == min(marks, key=marks.__getitem__)
    assert agg["watermark_spread_seconds"] == pytest.approx(
        (max(marks.values()) - min(marks.values())) / 1000
    )


def test_operators_without_watermarks_or_siblings(client: TestClient) -> None:
    ops = {o["operator_id"]: o for o in _get(client, window="1h")["operators"]}
    parse, solo = ops["parse"], ops["solo"]
    expected = _expected("parse", NOW - 60 * MIN, NOW)
    assert parse["detail"] == [expected[0], expected[1]]
    assert parse["stalled"] == []
    assert parse["watermark_spread_seconds"] is None and parse["slowest_watermark_subtask"] is None
    inputs = [expected[i]["input_count"] for i in (0, 1)]
    assert parse["input_skew"] == pytest.approx(max(inputs) * 2 / sum(inputs))
    assert solo["subtasks"] == 1 and solo["input_skew"] is None and solo["stalled"] == []
    assert solo["detail"] == list(_expected("solo", NOW - 60 * MIN, NOW).values())


def test_a_wider_window_reaches_the_subtask_that_stopped_before_it(client: TestClient) -> None:
    agg = _get(client, window="3h", operator_id="agg")["operators"]
    assert [o["operator_id"] for o in agg] == ["agg"]
    expected = _expected("agg", NOW - 180 * MIN, NOW)
    assert agg[0]["detail"] == [expected[i] for i in range(5)]
    assert agg[0]["stalled"] == [STOPPED, 4]


def test_a_quiet_operator_is_not_stalled_its_siblings_are_the_baseline(
    client: TestClient,
) -> None:
    """Ten minutes after the last fires every subtask is quiet; only the one that
    stopped before the others is behind them."""
    agg = _get(client, window="1h", until=NOW + 10 * MIN, operator_id="agg")["operators"][0]
    assert all(s["seconds_since_flush"] > 10 * 60 for s in agg["detail"])
    assert agg["stalled"] == [STOPPED]


def test_a_past_window(client: TestClient) -> None:
    """Ending before subtask 2 stopped: nothing had fallen behind yet."""
    until = NOW - 20 * MIN
    body = _get(client, window="20m", until=until, operator_id="agg")
    agg = body["operators"][0]
    expected = _expected("agg", until - 20 * MIN, until)
    assert agg["detail"] == [expected[i] for i in range(4)]
    assert agg["stalled"] == []


@pytest.mark.parametrize(
    ("params", "status", "words"),
    [({"pipeline": "order"}, 404, ["orders"]),
     ({"operator_id": "agx"}, 404, ["agg"]),
     ({"window": "soon"}, 422, ["window"]),
     ({"until": "yesterday"}, 422, ["until"])],
)  # fmt: skip
def test_bad_questions(
    client: TestClient, params: dict[str, str], status: int, words: list[str]
) -> None:
    pipeline = params.pop("pipeline", "orders")
    answer = client.get(f"/pipelines/{pipeline}/subtasks", params=params)
    assert answer.status_code == status, answer.text
    assert all(w in answer.json()["detail"] for w in words), answer.text


def test_metrics_carry_each_operators_subtasks_over_the_last_hour(client: TestClient) -> None:
    samples = {}
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(("faro_operator_subtasks", "faro_operator_input_skew",
                            "faro_operator_watermark_spread")):  # fmt: skip
            name_labels, value = line.rsplit(" ", 1)
            name, labels = name_labels.split("{")
            samples[(name, labels.split('"')[1])] = float(value)
    expected = {}
    # every flush but the fifth subtask's lies within the last hour of the scrape
    for op in ("agg", "parse", "solo"):
        subtasks = _expected(op, NOW - 60 * MIN, NOW + 1).values()
        inputs = [s["input_count"] for s in subtasks]
        newest = max(s["last_flush"] for s in subtasks)
        expected[("faro_operator_subtasks", op)] = len(inputs)
        expected[("faro_operator_subtasks_behind", op)] = sum(
            newest - s["last_flush"] >= STALE_S * 1000 for s in subtasks
        )
        if len(inputs) > 1:
            expected[("faro_operator_input_skew", op)] = pytest.approx(
                max(inputs) * len(inputs) / sum(inputs)
            )
        marks = [s["watermark"] for s in subtasks if s["watermark"] is not None]
        if len(marks) > 1:
            expected[("faro_operator_watermark_spread_seconds", op)] = pytest.approx(
                (max(marks) - min(marks)) / 1000
            )
    assert samples == expected
    assert samples[("faro_operator_subtasks_behind", "agg")] == 1


def test_an_operators_watermark_lag_is_measured_from_the_flush_that_carried_it(
    tmp_path: Path,
) -> None:
    """Subtask 1 of ``src`` has seen no watermark yet but flushes last: the lag is
    subtask 0's flush minus its watermark, not the newest flush minus it."""
    carried, newest = NOW - 10 * MIN, NOW - 1_000
    mark = carried - 5_000
    events = [
        CaptureEvent("w0", EventType.AGGREGATE, "idle-src", "src", OperatorType.MAP, carried,
                     subtask_index=0, input_count=3, output_count=3, watermark=mark),
        CaptureEvent("w1", EventType.AGGREGATE, "idle-src", "src", OperatorType.MAP, newest,
                     subtask_index=1, input_count=2, output_count=2),
    ]  # fmt: skip
    lag = (carried - mark) / 1000
    with client_over(events, tmp_path) as c:
        health = c.get("/pipelines/idle-src/health").json()["operators"]
        assert [(o["last_flush"], o["watermark"]) for o in health] == [(newest, mark)]
        assert health[0]["watermark_lag_seconds"] == pytest.approx(lag)
        gauge = next(
            ln for ln in c.get("/metrics").text.splitlines()
            if ln.startswith("faro_operator_watermark_lag_seconds{") and "idle-src" in ln
        )  # fmt: skip
        assert float(gauge.rsplit(" ", 1)[1]) == pytest.approx(lag)
        past = c.get("/pipelines/idle-src/health", params={"at": carried + 1}).json()
        assert past["operators"][0]["watermark_lag_seconds"] == pytest.approx(lag)
