"""/pipelines/{id}/funnel against flushes generated with known counts."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from faro import CaptureEvent, EventType, OperatorType
from tests.api.serving import client_over

NOW = int(time.time() * 1000)
HOUR = 3_600_000


def generate(seed: int = 3) -> list[CaptureEvent]:
    """Flushes from two subtasks each minute for 85 minutes: records pass through
    parse, valid, enrich and agg, some are lost between ``valid`` and ``enrich``,
    and a side operator
    ``audit`` sees a few; ``retired`` last flushed two hours ago."""
    rng = random.Random(seed)
    events: list[CaptureEvent] = []

    def flush(op: str, kind: OperatorType, at: int, subtask: int, n_in: int, n_out: int) -> None:
        events.append(CaptureEvent(
            f"f{len(events)}", EventType.AGGREGATE, "orders", op, kind, at,
            subtask_index=subtask, input_count=n_in, output_count=n_out,
        ))  # fmt: skip

    # nothing within 5 minutes of a window's edge (1h, 90m): the API's clock runs on
    # from this module's NOW while the suite runs
    for minute in [*range(54), *range(66, 84)]:
        for subtask in (0, 1):
            at = NOW - minute * 60_000 - rng.randrange(1, 50_000)
            parsed = rng.randrange(500, 1000)
            flush("parse", OperatorType.MAP, at, subtask, parsed, parsed)
            kept = parsed - rng.randrange(0, 200)
            flush("valid", OperatorType.FILTER, at, subtask, parsed, kept)
            arrived = kept - rng.randrange(0, 5)  # lost between the two
            flush("enrich", OperatorType.FLAT_MAP, at, subtask, arrived, 2 * arrived)
            flush("agg", OperatorType.WINDOW, at, subtask, 2 * arrived, rng.randrange(1, 20))
            flush("audit", OperatorType.PROCESS, at, subtask, rng.randrange(0, 10), 0)
    flush("retired", OperatorType.MAP, NOW - 2 * HOUR, 0, 50, 50)
    return events


EVENTS = generate()


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with client_over(EVENTS, tmp_path_factory.mktemp("store")) as c:
        yield c


def _totals(events: list[CaptureEvent], since: int) -> dict[str, tuple[int, int]]:
    totals: dict[str, tuple[int, int]] = {}
    for e in events:
        n_in, n_out = totals.get(e.operator_id, (0, 0))
        if e.processing_time >= since:
            n_in, n_out = n_in + (e.input_count or 0), n_out + (e.output_count or 0)
        totals[e.operator_id] = (n_in, n_out)
    return totals


def _expected(totals: dict[str, tuple[int, int]], order: list[str]) -> list[dict[str, object]]:
    stages = []
    first_in = totals[order[0]][0]
    for i, op in enumerate(order):
        n_in, n_out = totals[op]
        before = totals[order[i - 1]][1] if i else None
        stages.append({
            "operator_id": op, "input_count": n_in, "output_count": n_out,
            "pass_rate": pytest.approx(n_out / n_in) if n_in else None,
            "handoff_rate": pytest.approx(n_in / before) if before else None,
            "survival": pytest.approx(n_out / first_in) if first_in else None,
        })  # fmt: skip
    return stages


def _stages(body: dict) -> list[dict[str, object]]:
    return [{k: v for k, v in s.items() if k != "operator_type"} for s in body["stages"]]


def test_every_operator_in_order_of_kind_and_volume(client: TestClient) -> None:
    answer = client.get("/pipelines/orders/funnel", params={"window": "1h"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["order_from"] == "operator_kind"
    # per-record operators by volume, the operator with nothing in the window last
    # among them, then the window
    order = ["parse", "valid", "enrich", "audit", "retired", "agg"]
    assert _stages(body) == _expected(_totals(EVENTS, NOW - HOUR), order)
    kinds = {s["operator_id"]: s["operator_type"] for s in body["stages"]}
    assert kinds["enrich"] == "FLAT_MAP" and kinds["agg"] == "WINDOW"


def test_a_requested_path_shows_the_loss_between_two_stages(client: TestClient) -> None:
    order = ["parse", "valid", "enrich", "agg"]
    answer = client.get(
        "/pipelines/orders/funnel", params={"window": "90m", "order": " , ".join(order)}
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["order_from"] == "request"
    totals = _totals(EVENTS, NOW - 90 * 60_000)
    assert _stages(body) == _expected(totals, order)
    enrich = body["stages"][2]
    assert enrich["handoff_rate"] < 1  # records went missing between valid and enrich
    assert totals["valid"][1] > totals["enrich"][0]


@pytest.mark.parametrize(
    ("order", "names"),
    [("parse,vallid", ["vallid", "valid"]), ("parse,parse", ["parse", "more than once"]),
     (" , ", ["no operator"])],
)  # fmt: skip
def test_a_bad_order_is_a_422_that_says_what_is_wrong(
    client: TestClient, order: str, names: list[str]
) -> None:
    answer = client.get("/pipelines/orders/funnel", params={"order": order})
    assert answer.status_code == 422
    for name in names:
        assert name in answer.json()["detail"]


def test_unknown_pipeline_and_bad_window_are_4xx(client: TestClient) -> None:
    unknown = client.get("/pipelines/order/funnel")
    assert unknown.status_code == 404 and "orders" in unknown.json()["detail"]
    bad = client.get("/pipelines/orders/funnel", params={"window": "soon"})
    assert bad.status_code == 422 and "15m" in bad.json()["detail"]


def test_metrics_carry_each_operators_records_over_the_last_hour(client: TestClient) -> None:
    samples = {}
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("faro_operator_records_last_hour{"):
            labels, value = line.rsplit(" ", 1)
            samples[labels] = float(value)
    totals = _totals(EVENTS, NOW - HOUR)
    expected = {
        f'faro_operator_records_last_hour{{direction="{d}",operator_id="{op}",'
        f'pipeline_id="orders"}}': float(counts[i])
        for op, counts in totals.items()
        for i, d in enumerate(("in", "out"))
    }
    assert samples == expected
