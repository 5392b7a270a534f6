"""``until``: the windowed endpoints over a window that ended in the past, against
the generated dataset's own events in that window."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from faro.api import create_app
from faro.core.settings import FaroSettings
from faro.detect import Finding, Severity, ViolationType, ledger
from faro.store.rollups import next_minute
from tests.api.dataset import MIN, MISSING_WINDOW, Dataset, generate, seed

WINDOW = 15 * MIN


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return generate(seed=23)


@pytest.fixture(scope="module")
def until(dataset: Dataset) -> int:
    """20 minutes ago: the window holds the minute whose window never fired, and
    ends before the last flushes of every operator."""
    return dataset.now - 20 * MIN


@pytest.fixture(scope="module")
def client(
    dataset: Dataset, until: int, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    data_dir: Path = tmp_path_factory.mktemp("store")
    seed(data_dir, dataset)
    # open from 50 to 5 minutes ago: open at the window's end, resolved now
    late = Finding(ViolationType.NULL_RATE, "order-pipeline", None, "revenue", "null_rate",
                   0.5, 0.1, 0.2, Severity.HIGH, "revenue is null too often")  # fmt: skip
    ledger.record(data_dir, [late], dataset.now - 50 * MIN, WINDOW)
    ledger.record(data_dir, [], dataset.now - 5 * MIN, WINDOW)
    # no detection run of the app's own: it would judge the dataset's nulls itself
    with TestClient(create_app(data_dir, FaroSettings(detect_interval=0))) as c:
        yield c


def get(client: TestClient, path: str, **params: object) -> dict:
    response = client.get(path, params=params)
    assert response.status_code == 200, response.text
    body: dict = response.json()
    return body


def flushes(dataset: Dataset, operator: str, since: int, until: int) -> list:
    return [
        e for e in dataset.aggregates("order-pipeline", operator)
        if since <= e.processing_time < until
    ]  # fmt: skip


def test_operators_count_only_the_past_window(
    client: TestClient, dataset: Dataset, until: int
) -> None:
    body = get(client, "/pipelines/order-pipeline/operators", window="15m", until=until)
    ops = {o["operator_id"]: o for o in body["operators"]}
    # enrich and dedupe first flushed 2 and 10 minutes ago: after the window's end
    assert set(ops) == {"order-agg-window", "filter-big"}
    for name, op in ops.items():
        inside = flushes(dataset, name, until - WINDOW, until)
        assert len(inside) == (28 if name == "order-agg-window" else 30)
        assert op["input_per_minute"] == pytest.approx(sum(e.input_count for e in inside) / 15)
        assert op["output_per_minute"] == pytest.approx(sum(e.output_count for e in inside) / 15)
        before = flushes(dataset, name, 0, until)
        assert op["last_flush"] == max(e.processing_time for e in before)


def test_the_funnel_of_a_past_window(client: TestClient, dataset: Dataset, until: int) -> None:
    body = get(client, "/pipelines/order-pipeline/funnel", window="15m", until=until,
               order="filter-big,order-agg-window")  # fmt: skip
    for stage in body["stages"]:
        inside = flushes(dataset, stage["operator_id"], until - WINDOW, until)
        assert stage["input_count"] == sum(e.input_count for e in inside)
        assert stage["output_count"] == sum(e.output_count for e in inside)


def test_window_fires_of_a_past_window_find_the_window_that_never_fired(
    client: TestClient, dataset: Dataset, until: int
) -> None:
    body = get(client, "/pipelines/order-pipeline/windows", window="15m", until=until, limit=100)
    [op] = body["operators"]
    inside = flushes(dataset, "order-agg-window", until - WINDOW, until)
    assert op["fires"] == len(inside)
    assert op["windows"] == len({e.window_start for e in inside}) == 14
    assert op["missing_count"] == 1
    never = dataset.now - MISSING_WINDOW * MIN
    assert op["missing"] == [{"window_start": never - MIN, "window_end": never}]
    assert max(w["window_end"] for w in op["recent"]) < until


def test_an_entitys_values_in_a_past_window(
    client: TestClient, dataset: Dataset, until: int
) -> None:
    body = get(client, "/features/purchase_amount_7d/values", pipeline_id="user-feature-pipeline",
               entity_id="user-7", window="15m", until=until)  # fmt: skip
    expected = sorted(
        e.processing_time for e in dataset.entities(pipeline_id="user-feature-pipeline",
                                                    entity_id="user-7")
        if until - WINDOW <= e.processing_time < until
    )  # fmt: skip
    assert expected
    assert [v["processing_time"] for v in body["values"]] == expected


def test_summary_and_health_of_a_past_window_end_on_its_minute(
    client: TestClient, dataset: Dataset, until: int
) -> None:
    end = next_minute(until)
    summary = get(client, "/features/purchase_amount_7d/values/summary",
                  pipeline_id="user-feature-pipeline", window="15m", until=until)  # fmt: skip
    assert (summary["since"], summary["until"]) == (end - WINDOW, end)
    values = [
        e.feature_value for e in dataset.entities(pipeline_id="user-feature-pipeline")
        if end - WINDOW <= e.processing_time < end
    ]  # fmt: skip
    assert (summary["count"], summary["nulls"]) == (len(values), values.count(None))
    assert summary["max"] == max(v for v in values if v is not None)

    health = get(client, "/features/revenue/health", pipeline_id="order-pipeline", window="15m",
                 until=until, compare_to="1h_ago")  # fmt: skip
    inside = flushes(dataset, "order-agg-window", end - WINDOW, end)
    assert (health["current"]["since"], health["current"]["until"]) == (end - WINDOW, end)
    assert health["current"]["input_count"] == sum(e.input_count for e in inside)
    earlier = flushes(dataset, "order-agg-window", end - WINDOW - 60 * MIN, end - 60 * MIN)
    assert health["previous"]["input_count"] == sum(e.input_count for e in earlier)
    # the violation was open at the window's end, and is resolved now
    assert [v["feature"] for v in health["open_violations"]] == ["revenue"]
    now = get(client, "/features/revenue/health", pipeline_id="order-pipeline", window="15m")
    assert now["open_violations"] == []


@pytest.mark.parametrize(
    ("path", "params"),
    [("/pipelines/order-pipeline/operators", {}), ("/pipelines/order-pipeline/windows", {}),
     ("/pipelines/order-pipeline/funnel", {}),
     ("/features/revenue/health", {"pipeline_id": "order-pipeline"}),
     ("/features/revenue/values/summary", {"pipeline_id": "order-pipeline"}),
     ("/features/revenue/values", {"pipeline_id": "order-pipeline", "entity_id": "u"})],
)  # fmt: skip
@pytest.mark.parametrize(
    ("text", "says"), [("last tuesday", "ISO-8601"), ("-5", "ISO-8601"), ("1e30", "ISO-8601"),
                       ("99999999999999999999", "9999-12-31")],
)  # fmt: skip
def test_a_bad_until_is_a_422_that_says_what_to_send(
    client: TestClient, path: str, params: dict[str, str], text: str, says: str
) -> None:
    response = client.get(path, params={**params, "until": text})
    assert response.status_code == 422
    assert "until" in response.json()["detail"] and says in response.json()["detail"]


@pytest.mark.parametrize("ago_s", [570, 0])
def test_pipeline_health_at_a_moment(client: TestClient, dataset: Dataset, ago_s: int) -> None:
    """9.5 minutes ago every operator that had flushed was OK: dedupe flushed 30 s
    before, and enrich only flushes later. Now, dedupe is SILENT and enrich STALE."""
    at = dataset.now - ago_s * 1000
    settings = FaroSettings()
    last: dict[str, int] = {}
    for e in dataset.events:
        if e.pipeline_id == "order-pipeline" and e.processing_time <= at:
            last[e.operator_id] = max(last.get(e.operator_id, 0), e.processing_time)

    def status(idle_s: float) -> str:
        if idle_s >= settings.silent_after_s:
            return "SILENT"
        return "STALE" if idle_s >= settings.stale_after_s else "OK"

    body = get(client, "/pipelines/order-pipeline/health", at=at)
    assert body["at"] == at
    assert {o["operator_id"]: (o["last_flush"], o["status"]) for o in body["operators"]} == {
        op: (t, status((at - t) / 1000)) for op, t in last.items()
    }
    assert body["flowing"] is (ago_s == 570)


@pytest.mark.parametrize(("ago", "listed"), [(60, False), (50, True), (20, True), (5, False)])
def test_violations_open_at_a_moment(
    client: TestClient, dataset: Dataset, ago: int, listed: bool
) -> None:
    """The violation was open from 50 minutes ago until 5 minutes ago."""
    body = get(client, "/violations", at=dataset.now - ago * MIN)
    assert [v["feature"] for v in body["violations"]] == (["revenue"] if listed else [])
    if listed:
        assert body["violations"][0]["status"] == "RESOLVED"  # as it stands now
    assert get(client, "/violations")["count"] == 1
