"""Every read endpoint's numbers against the generated dataset's own ground truth."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from faro import CaptureEvent, EventType, FeatureValueType, OperatorType
from faro.api import create_app
from faro.store.columns import events_to_table
from faro.store.writer import EventWriter
from tests.api.dataset import MIN, Dataset, generate, seed


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return generate()


@pytest.fixture(scope="module")
def client(dataset: Dataset, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    data_dir: Path = tmp_path_factory.mktemp("store")
    seed(data_dir, dataset)
    with TestClient(create_app(data_dir)) as c:
        yield c


def test_pipelines_lists_every_pipeline(client: TestClient) -> None:
    assert client.get("/pipelines").json() == [
        {"pipeline_id": p} for p in ("fraud-pipeline", "order-pipeline", "user-feature-pipeline")
    ]


def test_features_of_each_pipeline_and_which_have_entity_values(
    client: TestClient, dataset: Dataset
) -> None:
    for pipeline in ("fraud-pipeline", "order-pipeline", "user-feature-pipeline"):
        assert client.get(f"/pipelines/{pipeline}/features").json() == {
            "pipeline_id": pipeline,
            "features": [
                {"name": n, "entity_values": v} for n, v in dataset.features(pipeline).items()
            ],
        }
    order = client.get("/pipelines/order-pipeline/features").json()["features"]
    assert [f["name"] for f in order] == ["order_count", "revenue"]  # aggregate only
    missing = client.get("/pipelines/nope/features")
    assert missing.status_code == 404 and "order-pipeline" in missing.json()["detail"]


def test_health_classifies_each_operator_by_its_last_flush(
    client: TestClient, dataset: Dataset
) -> None:
    body = client.get("/pipelines/order-pipeline/health").json()
    ops = {o["operator_id"]: o for o in body["operators"]}
    assert {k: o["status"] for k, o in ops.items()} == {
        "order-agg-window": "OK", "filter-big": "OK", "enrich": "STALE", "dedupe": "SILENT",
    }  # fmt: skip
    assert body["flowing"] is False
    window = dataset.aggregates("order-pipeline", "order-agg-window")
    last = max(window, key=lambda e: (e.processing_time, e.watermark or 0))
    assert ops["order-agg-window"]["last_flush"] == last.processing_time
    assert ops["order-agg-window"]["watermark"] == last.watermark
    assert ops["order-agg-window"]["watermark_lag_seconds"] == pytest.approx(
        (last.processing_time - last.watermark) / 1000
    )
    assert ops["enrich"]["watermark_lag_seconds"] is None


def test_operator_throughput_over_the_window(client: TestClient, dataset: Dataset) -> None:
    body = client.get("/pipelines/order-pipeline/operators?window=1h").json()
    ops = {o["operator_id"]: o for o in body["operators"]}
    since = dataset.now - 60 * MIN
    for name in ("order-agg-window", "filter-big"):
        flushes = [
            e for e in dataset.aggregates("order-pipeline", name) if e.processing_time >= since
        ]
        inputs = sum(e.input_count or 0 for e in flushes)
        outputs = sum(e.output_count or 0 for e in flushes)
        late = sum(e.late_count or 0 for e in flushes)
        assert ops[name]["input_per_minute"] == pytest.approx(inputs / 60, rel=0.02)
        assert ops[name]["filter_ratio"] == pytest.approx(outputs / inputs, rel=0.02)
        assert ops[name]["late_rate"] == pytest.approx(late / inputs, rel=0.02)
        assert ops[name]["subtasks"] == 2


def test_entity_values_are_the_entitys_in_time_order(client: TestClient, dataset: Dataset) -> None:
    body = client.get(
        "/features/purchase_amount_7d/values",
        params={"pipeline_id": "user-feature-pipeline", "entity_id": "user-7", "window": "1h"},
    ).json()
    since = dataset.now - 60 * MIN
    expected = sorted(
        (e for e in dataset.entities(pipeline_id="user-feature-pipeline", entity_id="user-7")
         if e.processing_time >= since),
        key=lambda e: (e.processing_time, e.operator_id, e.event_time, e.trace_id),
    )  # fmt: skip
    assert len(expected) > 3
    assert [(v["processing_time"], v["value"], v["trace_id"]) for v in body["values"]] == [
        (e.processing_time, e.feature_value, e.trace_id) for e in expected
    ]


def test_summary_from_entity_values(client: TestClient, dataset: Dataset) -> None:
    body = client.get(
        "/features/purchase_amount_7d/values/summary",
        params={"pipeline_id": "user-feature-pipeline", "window": "1h"},
    ).json()
    since, until = body["since"], body["until"]
    assert until - since == 60 * MIN and until % MIN == 0
    rows = [e.feature_value for e in dataset.entities(pipeline_id="user-feature-pipeline")
            if since <= e.processing_time < until]  # fmt: skip
    values = [v for v in rows if v is not None]
    assert body["source"] == "ENTITY"
    assert (body["count"], body["nulls"]) == (len(rows), len(rows) - len(values))
    assert (body["min"], body["max"]) == (min(values), max(values))
    assert body["mean"] == pytest.approx(statistics.fmean(values))
    assert body["stddev"] == pytest.approx(statistics.stdev(values))
    for q in (50, 95, 99):
        assert body[f"p{q}"] == pytest.approx(np.percentile(values, q))


def test_summary_of_a_suppressed_feature_comes_from_aggregate_statistics(
    client: TestClient, dataset: Dataset
) -> None:
    body = client.get(
        "/features/revenue/values/summary",
        params={"pipeline_id": "order-pipeline", "window": "1h"},
    ).json()
    since, until = body["since"], body["until"]
    raw = [v for i, vs in dataset.revenue_values.items()
           if since <= dataset.events[i].processing_time < until for v in vs]  # fmt: skip
    values = [v for v in raw if v is not None]
    assert body["source"] == "AGGREGATE"
    assert (body["count"], body["nulls"]) == (len(raw), len(raw) - len(values))
    assert body["mean"] == pytest.approx(statistics.fmean(values))
    assert body["stddev"] == pytest.approx(statistics.stdev(values), rel=1e-6)
    assert (body["min"], body["max"]) == (pytest.approx(min(values)), pytest.approx(max(values)))
    assert body["p50"] is None


def test_trace_lists_every_operator_in_processing_order(
    client: TestClient, dataset: Dataset
) -> None:
    body = client.get("/traces/trace-42").json()
    expected = sorted(dataset.entities(trace_id="trace-42"), key=lambda e: e.processing_time)
    assert [(e["pipeline_id"], e["processing_time"]) for e in body["events"]] == [
        (e.pipeline_id, e.processing_time) for e in expected
    ]
    assert len(expected) == 2


def test_lineage_crosses_pipelines_in_time_order(client: TestClient, dataset: Dataset) -> None:
    body = client.get("/entities/user-3/lineage").json()
    expected = sorted(
        dataset.entities(entity_id="user-3"),
        key=lambda e: (e.processing_time, e.pipeline_id, e.operator_id, e.feature_name,
                       e.event_time, e.trace_id),
    )
    assert [(s["pipeline_id"], s["operator_id"], s["processing_time"]) for s in body["steps"]] == [
        (e.pipeline_id, e.operator_id, e.processing_time) for e in expected
    ]
    assert {s["pipeline_id"] for s in body["steps"]} == {"user-feature-pipeline", "fraud-pipeline"}


@pytest.mark.parametrize("window", ["1 hour", "0h", "15", "2w", "-1h"])
def test_a_bad_window_is_a_422_naming_the_accepted_forms(client: TestClient, window: str) -> None:
    r = client.get("/pipelines/order-pipeline/operators", params={"window": window})
    assert r.status_code == 422
    assert "15m, 1h, 24h or 7d" in r.json()["detail"]


def test_unknown_names_are_404s_with_suggestions(client: TestClient) -> None:
    r = client.get("/pipelines/order-pipelin/health")
    assert r.status_code == 404 and "did you mean order-pipeline" in r.json()["detail"]
    assert client.get("/traces/nope").status_code == 404
    assert client.get("/entities/nobody/lineage").status_code == 404


def test_metrics_expose_freshness_per_operator(client: TestClient, dataset: Dataset) -> None:
    text = client.get("/metrics").text
    line = next(
        ln for ln in text.splitlines()
        if ln.startswith("faro_operator_seconds_since_flush{") and 'operator_id="dedupe"' in ln
    )  # fmt: skip
    assert math.isclose(float(line.split()[-1]), 600, abs_tol=30)


def test_requests_are_counted_by_route_and_status(client: TestClient) -> None:
    def sample(name: str, labels: str) -> float:
        prefix = f"{name}{{{labels}}} "
        lines = [ln for ln in client.get("/metrics").text.splitlines() if ln.startswith(prefix)]
        return float(lines[0].split()[-1]) if lines else 0.0

    route = 'route="/pipelines/{pipeline_id}/health"'
    before = sample("faro_api_requests_total", f'{route},status="404"')
    timed = sample("faro_api_request_seconds_count", route)
    for _ in range(3):
        client.get("/pipelines/no-such-pipeline/health")
    assert sample("faro_api_requests_total", f'{route},status="404"') == before + 3
    assert sample("faro_api_request_seconds_count", route) == timed + 3


# 1h: buckets of whole minutes, answered from rollups; 50m: 250 s buckets, from the events
@pytest.mark.parametrize("window", ["1h", "50m"])
def test_feature_health_buckets_an_aggregate_feature(
    client: TestClient, dataset: Dataset, window: str
) -> None:
    body = client.get(
        "/features/revenue/health",
        params={"pipeline_id": "order-pipeline", "window": window, "compare_to": "24h_ago"},
    ).json()
    cur = body["current"]
    since, until = cur["since"], cur["until"]
    size = (until - since) // 12
    flushes = [
        e for e in dataset.aggregates("order-pipeline", "order-agg-window")
        if since <= e.processing_time < until
    ]  # fmt: skip
    for b, bucket in enumerate(cur["buckets"]):
        inside = [e for e in flushes if (e.processing_time - since) // size == b]
        assert bucket["start"] == since + b * size
        assert bucket["input_count"] == sum(e.input_count or 0 for e in inside)
        assert bucket["output_count"] == sum(e.output_count or 0 for e in inside)
        assert bucket["late_count"] == sum(e.late_count or 0 for e in inside)
    inputs = sum(e.input_count or 0 for e in flushes)
    assert cur["filter_ratio"] == pytest.approx(sum(e.output_count or 0 for e in flushes) / inputs)
    assert cur["late_rate"] == pytest.approx(sum(e.late_count or 0 for e in flushes) / inputs)
    lags = [(e.processing_time - e.watermark) / 1000 for e in flushes if e.watermark is not None]
    assert cur["watermark_lag_seconds"] == pytest.approx(statistics.fmean(lags))
    assert cur["max_watermark_lag_seconds"] == pytest.approx(max(lags))
    raw = [v for i, vs in dataset.revenue_values.items()
           if since <= dataset.events[i].processing_time < until for v in vs]  # fmt: skip
    assert cur["values_from"] == "AGGREGATE"
    assert cur["null_rate"] == pytest.approx(sum(v is None for v in raw) / len(raw))
    assert cur["mean"] == pytest.approx(statistics.fmean(v for v in raw if v is not None))
    assert body["previous"]["input_count"] == 0  # nothing a day earlier
    assert body["deltas"]["input_count"] == inputs
    assert body["deltas"]["mean"] is None


@pytest.mark.parametrize("window", ["1h", "50m"])
@pytest.mark.parametrize("distinct", [False, True])
def test_feature_health_of_an_entity_feature(
    client: TestClient, dataset: Dataset, window: str, distinct: bool
) -> None:
    body = client.get(
        "/features/purchase_amount_7d/health",
        params={"pipeline_id": "user-feature-pipeline", "window": window,
                "distinct_entities": distinct},
    ).json()  # fmt: skip
    cur = body["current"]
    since, until = cur["since"], cur["until"]
    size = (until - since) // 12
    rows = [e for e in dataset.entities(pipeline_id="user-feature-pipeline")
            if since <= e.processing_time < until]  # fmt: skip
    for b, bucket in enumerate(cur["buckets"]):
        inside = [e for e in rows if (e.processing_time - since) // size == b]
        assert (bucket["entity_values"], bucket["entities"]) == (
            len(inside),
            len({e.entity_id for e in inside}) if distinct else None,
        )
    assert cur["values_from"] == "ENTITY"
    assert cur["null_rate"] == pytest.approx(sum(e.feature_value is None for e in rows) / len(rows))
    assert cur["mean"] == pytest.approx(
        statistics.fmean(e.feature_value for e in rows if e.feature_value is not None)
    )
    assert body["previous"] is None


def test_feature_health_names_the_known_features(client: TestClient) -> None:
    r = client.get("/features/revenu/health", params={"pipeline_id": "order-pipeline"})
    assert r.status_code == 404 and "revenue" in r.json()["detail"]
    r = client.get("/features/revenue/health",
                   params={"pipeline_id": "order-pipeline", "compare_to": "yesterday"})  # fmt: skip
    assert r.status_code == 422 and "24h_ago" in r.json()["detail"]


@pytest.mark.parametrize(
    ("value_type", "values"),
    [
        (FeatureValueType.SCALAR_DOUBLE, [1.5, None, -2.25]),
        (FeatureValueType.SCALAR_LONG, [3, 2**40, None]),
        (FeatureValueType.BOOLEAN, [True, False, None]),
        (FeatureValueType.STRING, ["gold", None, ""]),
        (FeatureValueType.VECTOR_DOUBLE, [[0.5, 1.0], None, []]),
    ],
)
def test_entity_values_come_back_as_their_type_stored_them(
    tmp_path: Path, value_type: FeatureValueType, values: list[object]
) -> None:
    now = int(time.time() * 1000)
    events = [
        CaptureEvent(
            f"e{i}", EventType.ENTITY, "typed-pipeline", "op", OperatorType.PROCESS,
            now - 1000 * (len(values) - i), features=["f"], entity_id="user-1",
            feature_name="f", feature_value=v, value_type=value_type, event_time=now - 5000,
        )
        for i, v in enumerate(values)
    ]  # fmt: skip
    EventWriter(tmp_path, "test").write(events_to_table(events))
    body = TestClient(create_app(tmp_path)).get(
        "/features/f/values",
        params={"pipeline_id": "typed-pipeline", "entity_id": "user-1", "window": "15m"},
    ).json()
    got = [(v["value_type"], v["value"]) for v in body["values"]]
    assert got == [(value_type.value, v) for v in values]
    assert [type(v["value"]) for v in body["values"]] == [type(v) for v in values]
