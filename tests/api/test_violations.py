"""/violations and the open violations in feature health, over a known ledger."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from faro import CaptureEvent, EventType, FeatureStats, OperatorType
from faro.api import create_app
from faro.core.settings import FaroSettings
from faro.detect import Finding, Severity, ViolationType, ledger
from faro.store.columns import events_to_table
from faro.store.writer import EventWriter

MIN = 60_000
W = 5 * MIN


def _finding(kind: str, pipeline: str, severity: str, operator=None, feature=None) -> Finding:
    return Finding(ViolationType(kind), pipeline, operator, feature, "m", 1.0, None, 0.5,
                   Severity(severity), f"{kind} in {pipeline}")  # fmt: skip


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    now = int(time.time() * 1000)
    events = [
        CaptureEvent("a1", EventType.AGGREGATE, "pay", "score", OperatorType.MAP, now - 3_600_000,
                     input_count=1, output_count=1),
        CaptureEvent("a2", EventType.AGGREGATE, "ship", "pack", OperatorType.MAP, now - MIN,
                     input_count=1, output_count=1, features=["amount"],
                     feature_stats=[FeatureStats("amount", 1, 0, 2.0, 4.0, 2.0, 2.0)]),
    ]  # fmt: skip
    EventWriter(tmp_path, "test").write(events_to_table(events))
    stale = _finding("FRESHNESS", "pay", "CRITICAL", operator="score")
    nulls = _finding("NULL_RATE", "ship", "HIGH", feature="amount")
    drift = _finding("MEAN_DRIFT", "ship", "LOW", feature="amount")
    ledger.record(tmp_path, [stale, nulls], now - 120 * MIN, W)
    ledger.record(tmp_path, [stale], now - 60 * MIN, W)
    ledger.record(tmp_path, [stale, drift], now - 5 * MIN, W)
    return TestClient(create_app(tmp_path, FaroSettings(detect_interval=0)))


def _types(response) -> list[str]:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["count"] == len(body["violations"])
    return [v["type"] for v in body["violations"]]


def test_all_newest_first_with_status(client):
    body = client.get("/violations").json()
    assert body["violations"][0]["type"] == "MEAN_DRIFT"
    status = {v["type"]: v["status"] for v in body["violations"]}
    assert status == {"MEAN_DRIFT": "OPEN", "FRESHNESS": "OPEN", "NULL_RATE": "RESOLVED"}
    nulls = next(v for v in body["violations"] if v["type"] == "NULL_RATE")
    assert nulls["resolved_at"] - nulls["opened_at"] == 60 * MIN


def test_filters(client):
    assert sorted(_types(client.get("/violations?severity_gte=HIGH"))) == [
        "FRESHNESS", "NULL_RATE"]  # fmt: skip
    assert sorted(_types(client.get("/violations?status=open"))) == ["FRESHNESS", "MEAN_DRIFT"]
    assert sorted(_types(client.get("/violations?status=resolved"))) == ["NULL_RATE"]
    assert sorted(_types(client.get("/violations?since=30m"))) == ["FRESHNESS", "MEAN_DRIFT"]
    ninety = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=90)
    assert len(_types(client.get("/violations", params={"since": ninety.isoformat()}))) == 3
    assert _types(client.get("/violations?type=MEAN_DRIFT")) == ["MEAN_DRIFT"]
    assert sorted(_types(client.get("/violations?pipeline_id=ship"))) == [
        "MEAN_DRIFT", "NULL_RATE"]  # fmt: skip
    assert _types(client.get("/violations?pipeline_id=ship&severity_gte=MEDIUM")) == ["NULL_RATE"]


@pytest.mark.parametrize(
    ("query", "status", "message"),
    [
        ("severity_gte=SEVERE", 422, "LOW"),
        ("type=LATE", 422, "FRESHNESS"),
        ("since=yesterday", 422, "ISO-8601"),
        ("pipeline_id=shipp", 404, "did you mean ship"),
    ],
)
def test_bad_queries_say_what_is_accepted(client, query, status, message):
    response = client.get(f"/violations?{query}")
    assert response.status_code == status
    assert message in response.json()["detail"]


def test_feature_health_lists_the_feature_open_violations(client):
    body = client.get("/features/amount/health?pipeline_id=ship").json()
    assert [v["type"] for v in body["open_violations"]] == ["MEAN_DRIFT"]
