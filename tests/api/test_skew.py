"""POST /features/{feature}/skew: a simulated serving log against what was captured.

The test plays a serving store that sometimes lags the pipeline and sometimes
corrupts a value, logs what a model was served, and computes from the events
what the endpoint must say about each row.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from faro import CaptureEvent, EventType, FeatureValueType, OperatorType
from faro.core.sampling import is_sampled
from tests.api.serving import client_over

MIN, HOUR, DAY = 60_000, 3_600_000, 86_400_000
NOW = int(time.time() * 1000)
RATE = 0.5
# entities sampled at RATE (the pipeline captures them), and others of which some are
# sampled (a value the model got for one of them the pipeline never computed) and some not
ENTITIES = [u for u in (f"user-{i}" for i in range(100)) if is_sampled(u, RATE)][:30]
OTHERS = [f"visitor-{i}" for i in range(12)]
LOOKBACK = 7 * DAY


def entity(
    n: int, entity_id: str, op: str, processing: int, value: object,
    *, feature: str = "score", value_type: str = "SCALAR_DOUBLE",
) -> CaptureEvent:  # fmt: skip
    return CaptureEvent(
        f"ev-{n}", EventType.ENTITY, "p", op, OperatorType.MAP, processing,
        features=[feature], entity_id=entity_id, feature_name=feature, feature_value=value,
        value_type=FeatureValueType(value_type), event_time=processing - MIN, sample_rate=RATE,
        trace_id=f"{n:032x}",
    )  # fmt: skip


def generate() -> list[CaptureEvent]:
    """Each entity's score over three days: op-a computes it, op-b (downstream)
    processes the same record up to a second later and rescales it. Processing times
    are distinct, so "the value processed last" has one answer. Some values repeat
    their predecessor, as a feature that did not change does."""
    rng = random.Random(11)
    events: list[CaptureEvent] = []
    moments = sorted(rng.sample(range(NOW - 3 * DAY, NOW - HOUR, 1000), 900))
    for n, t in enumerate(moments):
        entity_id = rng.choice(ENTITIES)
        value = round(rng.uniform(0, 100), 2)
        previous = [e for e in events if e.entity_id == entity_id and e.operator_id == "op-a"]
        if previous and rng.random() < 0.15:
            value = previous[-1].feature_value  # type: ignore[assignment]
        events.append(entity(2 * n, entity_id, "op-a", t, value))
        events.append(entity(2 * n + 1, entity_id, "op-b", t + rng.randrange(1, 1000), value * 2))
    events.sort(key=lambda e: e.processing_time)
    events += [
        entity(5000, "user-typed", "op-a", NOW - DAY, "gold", feature="tier", value_type="STRING"),
        entity(5001, "user-typed", "op-a", NOW - DAY, True, feature="vip", value_type="BOOLEAN"),
        entity(
            5002,
            "user-typed",
            "op-a",
            NOW - DAY,
            [1.0, 2.5],
            feature="emb",
            value_type="VECTOR_DOUBLE",
        ),
    ]
    events += [
        CaptureEvent(f"agg-{op}", EventType.AGGREGATE, "p", op, OperatorType.MAP, NOW - DAY,
                     features=["score", "income"], input_count=10, output_count=10)
        for op in ("op-a", "op-b")
    ]  # fmt: skip
    return events


def history(
    events: list[CaptureEvent], entity_id: str, at: int, operator: str | None
) -> list[CaptureEvent]:
    """The entity's scores processed in [at - lookback, at] by ``operator`` (None: by the
    operator that processed one last), newest first: the endpoint's definition."""
    seen = [
        e for e in events
        if e.entity_id == entity_id and e.feature_name == "score"
        and at - LOOKBACK <= e.processing_time <= at
    ]  # fmt: skip
    if not seen:
        return []
    chosen = operator or max(seen, key=lambda e: e.processing_time).operator_id
    return sorted((e for e in seen if e.operator_id == chosen), key=lambda e: -e.processing_time)


@pytest.fixture(scope="module")
def events() -> list[CaptureEvent]:
    return generate()


@pytest.fixture(scope="module")
def client(
    events: list[CaptureEvent], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    with client_over(events, tmp_path_factory.mktemp("store")) as c:
        yield c


def check(client: TestClient, feature: str = "score", **body: object) -> dict:
    response = client.post(f"/features/{feature}/skew", json={"pipeline_id": "p", **body})
    assert response.status_code == 200, response.text
    answer: dict = response.json()
    return answer


@pytest.mark.parametrize("operator", [None, "op-a", "op-b"])
def test_a_simulated_serving_log_is_judged_as_the_events_say(
    client: TestClient, events: list[CaptureEvent], operator: str | None
) -> None:
    rng = random.Random(5 if operator is None else len(operator))
    rows, truth = [], []
    for i in range(400):
        entity_id = rng.choice([*ENTITIES, *OTHERS])
        at = NOW - rng.randrange(3 * DAY + HOUR)
        current = history(events, entity_id, at, operator)
        kind = rng.choice(["served right", "store lags", "corrupted"])
        served: object = None
        if kind == "store lags":  # what the store held when it was `lag` behind
            lagged = [e for e in current if e.processing_time <= at - rng.randrange(HOUR, DAY)]
            served = lagged[0].feature_value if lagged else None
        elif current:
            served = current[0].feature_value
            if kind == "corrupted":
                served += 1000.125  # type: ignore[operator]
        rows.append({"entity_id": entity_id, "at": at, "value": served})
        if not current:
            truth.append("missing" if is_sampled(entity_id, RATE) else None)
        elif served == current[0].feature_value:
            truth.append("match")
        else:
            earlier = next(
                (k for k in range(1, len(current)) if current[k].feature_value == served), None
            )
            outdated = None if earlier is None else (
                current[earlier].processing_time, at - current[earlier - 1].processing_time
            )  # fmt: skip
            truth.append((i, entity_id, current[0].operator_id, current[0].processing_time,
                           current[0].feature_value, served, outdated))  # fmt: skip
    body = check(client, rows=rows, **({} if operator is None else {"operator_id": operator}))

    mismatches = [t for t in truth if isinstance(t, tuple)]
    assert [
        (m["index"], m["entity_id"], m["captured"]["operator_id"],
         m["captured"]["processing_time"], m["captured"]["value"], m["served"],
         None if m["served_processed_at"] is None
         else (m["served_processed_at"], m["outdated_ms"]))
        for m in body["mismatches"]
    ] == mismatches  # fmt: skip
    compared = sum(t not in (None, "missing") for t in truth)
    assert (body["rows"], body["compared"], body["not_captured"]) == (400, compared, 400 - compared)
    assert (body["sample_rate"], body["not_sampled"]) == (RATE, truth.count(None))
    assert [(m["index"], m["entity_id"], m["at"]) for m in body["missing"]] == [
        (i, row["entity_id"], row["at"]) for i, (row, t) in enumerate(zip(rows, truth, strict=True))
        if t == "missing"
    ]  # fmt: skip
    assert body["matched"] == truth.count("match")
    assert body["mismatched"] == len(mismatches)
    assert body["outdated"] == sum(m[6] is not None for m in mismatches)
    assert body["mismatch_rate"] == pytest.approx(len(mismatches) / compared)
    hours: dict[int, list[int]] = {}
    for row, t in zip(rows, truth, strict=True):
        at: int = row["at"]  # type: ignore[assignment]
        counts = hours.setdefault(at - at % HOUR, [0, 0, 0, 0])
        counts[0] += 1
        counts[1] += t not in (None, "missing")
        counts[2] += isinstance(t, tuple)
        counts[3] += isinstance(t, tuple) and t[6] is not None
    assert [
        (h["start"], h["rows"], h["compared"], h["mismatched"], h["outdated"])
        for h in body["hours"]
    ] == [(start, *counts) for start, counts in sorted(hours.items())]
    for m in body["mismatches"]:
        served, captured = m["served"], m["captured"]["value"]
        assert (
            m["abs_diff"] == pytest.approx(abs(served - captured))
            if served is not None
            else (m["abs_diff"] is None)
        )
    # the simulation covers every kind of answer
    assert truth.count("match") > 50 and truth.count(None) > 5 and truth.count("missing") > 5
    assert sum(m[6] is not None for m in mismatches) > 20
    assert sum(m[6] is None for m in mismatches) > 20


def test_tolerances_and_typed_values(client: TestClient, events: list[CaptureEvent]) -> None:
    [e] = history(events, ENTITIES[0], NOW, "op-b")[:1]
    value: float = e.feature_value  # type: ignore[assignment]
    close = {"entity_id": ENTITIES[0], "at": NOW, "value": value + 1e-4}
    assert check(client, rows=[close], operator_id="op-b")["mismatched"] == 1
    assert check(client, rows=[close], operator_id="op-b", abs_tol=1e-3)["matched"] == 1
    relative = {**close, "value": value * (1 + 1e-4)}
    assert check(client, rows=[relative], operator_id="op-b")["mismatched"] == 1
    assert check(client, rows=[relative], operator_id="op-b", rel_tol=1e-3)["matched"] == 1

    def judged(feature: str, value: object) -> tuple[int, int]:
        body = check(client, feature, rows=[{"entity_id": "user-typed", "at": NOW, "value": value}])
        return body["matched"], body["mismatched"]

    assert judged("tier", "gold") == (1, 0)
    assert judged("tier", "Gold") == (0, 1)
    assert judged("tier", 1) == (0, 1)
    assert judged("vip", True) == (1, 0)
    assert judged("vip", 1) == (1, 0)  # a model that logs booleans as 0/1
    assert judged("vip", False) == (0, 1)
    assert judged("emb", [1, 2.5]) == (1, 0)
    assert judged("emb", [1.0, 2.5, 0.0]) == (0, 1)
    assert judged("emb", None) == (0, 1)


@pytest.mark.parametrize(
    ("feature", "body", "status", "says"),
    [
        ("score", {"pipeline_id": "nope"}, 404, "unknown pipeline"),
        ("score", {"operator_id": "op-c"}, 404, "Known: op-a, op-b"),
        ("scroe", {}, 404, "did you mean score"),
        ("income", {}, 422, "aggregate statistics only"),
        ("score", {"rows": [{"entity_id": "user-1", "at": "noon", "value": 1}]}, 422, "rows[0].at"),
        ("score", {"rows": []}, 422, "at least 1"),
        (
            "score",
            {"rows": [{"entity_id": "u", "at": NOW, "value": 1}] * 10_001},
            422,
            "at most 10000",
        ),
        ("score", {"lookback": "forever"}, 422, "lookback"),
        ("score", {"abs_tol": -1}, 422, "greater than or equal to 0"),
    ],
)
def test_bad_requests_are_told_what_to_fix(
    client: TestClient, feature: str, body: dict, status: int, says: str
) -> None:
    request = {"pipeline_id": "p", "rows": [{"entity_id": "user-1", "at": NOW, "value": 1}]}
    response = client.post(f"/features/{feature}/skew", json={**request, **body})
    assert response.status_code == status, response.text
    assert says in response.text
