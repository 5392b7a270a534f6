"""/pipelines/{id}/windows against windows generated with known fires and gaps."""

from __future__ import annotations

import random
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from faro import CaptureEvent, EventType, OperatorType
from faro.api import create_app
from faro.core.json_codec import to_json_array
from tests.api.serving import client_over

SEC = 1000
NOW = int(time.time() * 1000)
TUMBLING = 10 * SEC
SLIDE, SIZE = 20 * SEC, 60 * SEC
# window indices on each operator's grid that no key fires
TUMBLING_GAPS = {5, 6, 40}
SLIDING_GAPS = {30}


def _grid_origin(length: int) -> int:
    return (NOW - 50 * 60 * SEC) // length * length


def generate(seed: int = 5) -> list[CaptureEvent]:
    rng = random.Random(seed)
    events: list[CaptureEvent] = []

    def fire(op: str, kind: OperatorType, start: int, end: int, at: int, **kw: object) -> None:
        events.append(CaptureEvent(
            f"w{len(events)}", EventType.AGGREGATE, "win-pipeline", op, kind, at,
            window_start=start, window_end=end, **kw,  # type: ignore[arg-type]
        ))  # fmt: skip

    # Flink tumbling windows: one fire per key and subtask, late records dropped upstream
    origin = _grid_origin(TUMBLING)
    for i in range(200):
        if i in TUMBLING_GAPS:
            continue
        start = origin + i * TUMBLING
        for subtask in (0, 1):
            for _key in range(rng.randrange(1, 4)):
                at = start + TUMBLING + rng.randrange(200, 9_000)
                fire("agg-window", OperatorType.WINDOW, start, start + TUMBLING, at,
                     subtask_index=subtask, input_count=rng.randrange(1, 50), output_count=1,
                     late_count=None, features=["orders_10s"])  # fmt: skip
    # the same operator two hours ago: outside a 1h query
    old = origin - 2 * 3600 * SEC
    fire("agg-window", OperatorType.WINDOW, old, old + TUMBLING, old + TUMBLING + 500,
         input_count=7, output_count=1)  # fmt: skip
    # sliding windows that count late records
    origin = _grid_origin(SLIDE)
    for i in range(100):
        if i not in SLIDING_GAPS:
            start = origin + i * SLIDE
            inputs = rng.randrange(10, 100)
            fire("sliding", OperatorType.WINDOW, start, start + SIZE,
                 start + SIZE + rng.randrange(100, 3_000), input_count=inputs,
                 output_count=2, late_count=rng.randrange(0, 3))  # fmt: skip
    # Spark micro-batches whose output spans one to three windows
    origin = _grid_origin(TUMBLING)
    for i in range(30):
        start = origin + i * 3 * TUMBLING
        end = start + rng.randrange(1, 4) * TUMBLING
        fire("spark-agg", OperatorType.AGG, start, end, end + 1_000, input_count=100,
             output_count=3, late_count=1)  # fmt: skip
    # an operator without windows is not listed
    events.append(CaptureEvent(
        "m1", EventType.AGGREGATE, "win-pipeline", "parse", OperatorType.MAP, NOW - 60 * SEC,
        input_count=5, output_count=5,
    ))  # fmt: skip
    return events


@pytest.fixture(scope="module")
def events() -> list[CaptureEvent]:
    return generate()


@pytest.fixture(scope="module")
def client(
    events: list[CaptureEvent], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    with client_over(events, tmp_path_factory.mktemp("store")) as c:
        yield c


def _truth(events: list[CaptureEvent], operator: str) -> dict[str, object]:
    """What the endpoint should answer for ``operator`` over the last hour, from the events."""
    since = NOW - 3600 * SEC
    fires = [e for e in events if e.operator_id == operator and e.processing_time >= since]
    windows: dict[tuple[int, int], list[CaptureEvent]] = defaultdict(list)
    for e in fires:
        assert e.window_start is not None and e.window_end is not None
        windows[(e.window_start, e.window_end)].append(e)
    delays = np.array([e.processing_time - e.window_end for e in fires], dtype=float)  # type: ignore[operator]
    counted = [e for e in fires if e.late_count is not None]
    late_in = sum(e.input_count or 0 for e in counted)
    newest = sorted(windows, reverse=True)
    return {
        "windows": len(windows),
        "fires": len(fires),
        "p50": np.percentile(delays, 50) / 1000,
        "p95": np.percentile(delays, 95) / 1000,
        "max": delays.max() / 1000,
        "late_rate": sum(e.late_count or 0 for e in counted) / late_in if late_in else None,
        "recent": [
            {
                "window_start": s, "window_end": e, "fires": len(windows[(s, e)]),
                "input_count": sum(f.input_count or 0 for f in windows[(s, e)]),
                "last_fire": max(f.processing_time for f in windows[(s, e)]),
            }
            for s, e in newest
        ],
    }  # fmt: skip


def _operator(client: TestClient, operator: str, **params: object) -> dict:
    body = client.get("/pipelines/win-pipeline/windows", params={"window": "1h", **params})
    assert body.status_code == 200, body.text
    ops = {o["operator_id"]: o for o in body.json()["operators"]}
    assert set(ops) == {"agg-window", "sliding", "spark-agg"}  # "parse" has no windows
    return ops[operator]


@pytest.mark.parametrize("operator", ["agg-window", "sliding", "spark-agg"])
def test_counts_and_fire_delays_per_operator(
    client: TestClient, events: list[CaptureEvent], operator: str
) -> None:
    truth = _truth(events, operator)
    got = _operator(client, operator, limit=1000)
    assert (got["windows"], got["fires"]) == (truth["windows"], truth["fires"])
    delay = got["fire_delay"]
    assert delay["p50_seconds"] == pytest.approx(truth["p50"])
    assert delay["p95_seconds"] == pytest.approx(truth["p95"])
    assert delay["max_seconds"] == pytest.approx(truth["max"])
    if truth["late_rate"] is None:
        assert got["late_rate"] is None
    else:
        assert got["late_rate"] == pytest.approx(truth["late_rate"])
    recent = [
        {k: w[k] for k in ("window_start", "window_end", "fires", "input_count")}
        | {"last_fire": w["window_end"] + round(w["fire_delay_seconds"] * 1000)}
        for w in got["recent"]
    ]
    assert recent == truth["recent"]


def test_missing_tumbling_windows_are_the_gaps_between_fires(client: TestClient) -> None:
    got = _operator(client, "agg-window")
    assert (got["window_length_ms"], got["step_ms"]) == (TUMBLING, TUMBLING)
    origin = _grid_origin(TUMBLING)
    expected = [(origin + i * TUMBLING, origin + (i + 1) * TUMBLING) for i in sorted(TUMBLING_GAPS)]
    assert got["missing_count"] == len(expected)
    assert [(m["window_start"], m["window_end"]) for m in got["missing"]] == expected[::-1]
    assert got["missing_note"] is None
    assert got["late_rate"] is None  # Flink windows never see their late records


def test_sliding_windows_are_on_a_grid_of_their_slide(client: TestClient) -> None:
    got = _operator(client, "sliding")
    assert (got["window_length_ms"], got["step_ms"]) == (SIZE, SLIDE)
    (gap,) = SLIDING_GAPS
    start = _grid_origin(SLIDE) + gap * SLIDE
    assert got["missing"] == [{"window_start": start, "window_end": start + SIZE}]
    newest = got["recent"][0]
    assert newest["late_rate"] == pytest.approx(newest["late_count"] / newest["input_count"])


def test_windows_of_varying_length_say_why_nothing_is_missing(client: TestClient) -> None:
    got = _operator(client, "spark-agg")
    assert got["window_length_ms"] is None and got["missing_count"] is None
    assert got["missing"] == [] and "differ in length" in got["missing_note"]


def test_limit_keeps_the_newest_windows(client: TestClient, events: list[CaptureEvent]) -> None:
    got = _operator(client, "agg-window", limit=3)
    assert [w["window_start"] for w in got["recent"]] == [
        w["window_start"]
        for w in _truth(events, "agg-window")["recent"][:3]  # type: ignore[index]
    ]


def test_bad_requests_are_4xx_with_a_reason(client: TestClient) -> None:
    unknown = client.get("/pipelines/win-pipelin/windows")
    assert unknown.status_code == 404 and "win-pipeline" in unknown.json()["detail"]
    assert client.get("/pipelines/win-pipeline/windows?limit=0").status_code == 422
    bad = client.get("/pipelines/win-pipeline/windows?window=soon")
    assert bad.status_code == 422 and "15m" in bad.json()["detail"]


def test_late_rates_are_unknown_not_zero_where_the_operator_cannot_see_late_records(
    client: TestClient, events: list[CaptureEvent]
) -> None:
    body = client.get("/pipelines/win-pipeline/operators?window=1h").json()
    rates = {o["operator_id"]: o["late_rate"] for o in body["operators"]}
    assert rates["agg-window"] is None  # every fire has late_count None
    since = NOW - 3600 * SEC
    sliding = [e for e in events if e.operator_id == "sliding" and e.processing_time >= since]
    late = sum(e.late_count or 0 for e in sliding)
    assert late > 0
    assert rates["sliding"] == pytest.approx(late / sum(e.input_count or 0 for e in sliding))


@pytest.mark.parametrize("window", ["1h", "50m"])  # from rollups, and from the events
def test_feature_health_of_a_window_feature_has_no_late_rate(
    client: TestClient, window: str
) -> None:
    body = client.get(
        "/features/orders_10s/health", params={"pipeline_id": "win-pipeline", "window": window}
    ).json()
    assert body["current"]["input_count"] > 0 and body["current"]["late_rate"] is None


@pytest.mark.parametrize("window", ["1h", "50m"])  # feature health: rollups, then events
def test_late_records_a_window_set_aside_count_as_its_inputs_and_in_no_fire(
    tmp_path: Path, window: str
) -> None:
    """What FaroFlink.late_trace sends beside a window's fires: AGGREGATE events of the
    window's id without bounds, each late record an input and late, none an output."""
    rng = random.Random(11)
    start = NOW - 40 * 60 * SEC
    events, handed = [], 0
    for i in range(30):
        at = start + i * 60 * SEC
        n, dropped = rng.randrange(50, 90), rng.randrange(0, 6)
        handed += n + dropped
        events.append(CaptureEvent(
            f"m{i}", EventType.AGGREGATE, "late-p", "parse", OperatorType.MAP, at - 500,
            features=["orders"], input_count=n + dropped, output_count=n + dropped,
        ))  # fmt: skip
        events.append(CaptureEvent(
            f"f{i}", EventType.AGGREGATE, "late-p", "agg", OperatorType.WINDOW, at,
            features=["orders"], input_count=n, output_count=3, window_start=at - 10 * SEC,
            window_end=at,
        ))  # fmt: skip
        if dropped:
            events.append(CaptureEvent(
                f"l{i}", EventType.AGGREGATE, "late-p", "agg", OperatorType.WINDOW, at + 200,
                features=["orders"], input_count=dropped, output_count=0, late_count=dropped,
            ))  # fmt: skip
    fires = [e for e in events if e.event_id.startswith("f")]
    late = sum(e.late_count or 0 for e in events)
    inputs = sum(e.input_count for e in events if e.operator_id == "agg")
    assert late > 0 and inputs == handed
    # Spark: each micro-batch counts its late rows; one with no output has no bounds
    batches = [CaptureEvent(
        f"s{i}", EventType.AGGREGATE, "spark-p", "batches", OperatorType.AGG, start + i * SEC,
        input_count=n, output_count=n // 10, late_count=k,
        **({"window_start": start, "window_end": start + 10 * SEC} if n else {}),
    ) for i, (n, k) in enumerate([(100, 4), (0, 0), (80, 2), (0, 3)])]  # fmt: skip
    with client_over(events + batches, tmp_path) as c:
        [spark] = c.get("/pipelines/spark-p/windows?window=1h").json()["operators"]
        assert spark["late_rate"] == pytest.approx(6 / 180)  # its fires' own counts only
        ops = {o["operator_id"]: o for o in
               c.get("/pipelines/late-p/operators?window=1h").json()["operators"]}  # fmt: skip
        assert ops["agg"]["late_rate"] == pytest.approx(late / inputs)
        assert ops["agg"]["filter_ratio"] == pytest.approx(3 * len(fires) / inputs)
        [agg] = c.get("/pipelines/late-p/windows?window=1h").json()["operators"]
        assert (agg["windows"], agg["fires"]) == (len(fires), len(fires))
        assert agg["late_rate"] == pytest.approx(late / inputs)
        assert all(w["late_rate"] is None for w in agg["recent"])  # no fire sees them
        stages = c.get("/pipelines/late-p/funnel?window=1h&order=parse,agg").json()["stages"]
        assert stages[1]["handoff_rate"] == 1.0  # nothing lost between parse and agg
        health = c.get(
            "/features/orders/health", params={"pipeline_id": "late-p", "window": window}
        ).json()["current"]
        assert health["late_rate"] == pytest.approx(late / (inputs + handed))


def test_sentinel_times_from_engines_are_stored_and_every_read_still_answers(
    tmp_path: Path,
) -> None:
    """Long.MIN_VALUE / Long.MAX_VALUE watermarks ("none yet", "end of input") and
    window bounds that are not times: /ingest stores them, and the reads that
    subtract times (watermark lag, fire delay) must not overflow into a 500."""
    low, high = -(2**63), 2**63 - 1
    odd = [
        (low + 1, low, low), (high, high, high), (None, 5, 5), (None, 10, 0),
        (2**62, -(2**62), 2**62),
    ]  # fmt: skip
    events = [
        CaptureEvent(
            f"s{i}", EventType.AGGREGATE, "odd", f"op{i}", OperatorType.WINDOW, NOW - i,
            features=["f"], input_count=1, output_count=1, watermark=watermark,
            window_start=start, window_end=end,
        )
        for i, (watermark, start, end) in enumerate(odd)
    ]  # fmt: skip
    with TestClient(create_app(tmp_path), raise_server_exceptions=False) as c:
        stored = c.post(
            "/ingest", content=to_json_array(events), headers={"content-type": "application/json"}
        )
        assert stored.json()["accepted"] == len(events)
        for path in (
            "/pipelines/odd/windows", "/pipelines/odd/operators", "/pipelines/odd/health",
            "/features/f/health?pipeline_id=odd", "/features/f/health?pipeline_id=odd&window=50m",
            "/metrics",
        ):  # fmt: skip
            assert c.get(path).status_code == 200, path
        windows = {o["operator_id"]: o for o in c.get("/pipelines/odd/windows").json()["operators"]}
        assert set(windows) == {"op2", "op3", "op4"}  # bounds that are times
        assert all("end where" in windows[o]["missing_note"] for o in ("op2", "op3"))
        health = c.get("/features/f/health?pipeline_id=odd").json()["current"]
        assert health["watermark_lag_seconds"] == pytest.approx((NOW - 4 - 2**62) / 1000)
        lags = {
            o["operator_id"]: o["watermark_lag_seconds"]
            for o in c.get("/pipelines/odd/health").json()["operators"]
        }
        assert lags == {"op0": None, "op1": None, "op2": None, "op3": None, "op4": lags["op4"]}
        assert lags["op4"] == pytest.approx((NOW - 4 - 2**62) / 1000)


def test_metrics_carry_each_window_operators_fire_delay_and_missing_windows(
    client: TestClient,
) -> None:
    ops = {
        o["operator_id"]: o
        for o in client.get("/pipelines/win-pipeline/windows?window=1h").json()["operators"]
    }
    samples = {}
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(("faro_window_fire_delay_seconds{", "faro_window_missing{")):
            name_labels, value = line.rsplit(" ", 1)
            samples[name_labels] = float(value)

    def sample(name: str, operator: str, quantile: str | None = None) -> float | None:
        q = "" if quantile is None else f',quantile="{quantile}"'
        return samples.get(f'{name}{{operator_id="{operator}",pipeline_id="win-pipeline"{q}}}')

    for operator, o in ops.items():
        delay = o["fire_delay"]
        assert sample("faro_window_fire_delay_seconds", operator, "0.5") == pytest.approx(
            delay["p50_seconds"]
        )
        assert sample("faro_window_fire_delay_seconds", operator, "0.95") == pytest.approx(
            delay["p95_seconds"]
        )
        assert sample("faro_window_missing", operator) == o["missing_count"]  # None: no grid
    assert sample("faro_window_missing", "agg-window") == len(TUMBLING_GAPS)
