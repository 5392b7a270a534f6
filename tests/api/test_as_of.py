"""/features/{feature}/values/as-of against an answer the test computes from the events."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from faro import CaptureEvent, EventType, FeatureValueType, OperatorType
from faro.api import create_app
from faro.store.columns import events_to_table
from faro.store.queries import StoreQueries
from faro.store.writer import EventWriter

MIN, HOUR, DAY = 60_000, 3_600_000, 86_400_000
NOW = int(time.time() * 1000)
T = NOW - 2 * DAY  # the late correction's event time
ENTITIES = ["user-1", "user-2", "user-3"]


def entity(
    n: int, entity_id: str, op: str, processing: int, event: int | None, value: object,
    *, feature: str = "f", pipeline: str = "p", value_type: str = "SCALAR_DOUBLE",
) -> CaptureEvent:  # fmt: skip
    return CaptureEvent(
        f"ev-{n}", EventType.ENTITY, pipeline, op, OperatorType.PROCESS, processing,
        features=[feature], entity_id=entity_id, feature_name=feature, feature_value=value,
        value_type=FeatureValueType(value_type), event_time=event, sample_rate=1.0,
        trace_id=f"{n:032x}",
    )  # fmt: skip


def generate() -> list[CaptureEvent]:
    """Three days of values: two operators, events processed up to two hours after
    their event time, re-computations of an event time processed later with another
    value, values without event time, and other features and pipelines that must not
    answer."""
    rng = random.Random(7)
    events: list[CaptureEvent] = []
    for n in range(600):
        processing = NOW - rng.randrange(3 * DAY)
        event = None if rng.random() < 0.05 else processing - rng.randrange(2 * HOUR)
        value = None if rng.random() < 0.05 else round(rng.uniform(0, 100), 2)
        events.append(entity(n, rng.choice(ENTITIES), rng.choice(["op-a", "op-b"]),
                             processing, event, value,
                             feature=rng.choice(["f", "f", "f", "g"]),
                             pipeline=rng.choice(["p", "p", "p", "other"])))  # fmt: skip
        if event is not None and rng.random() < 0.2:  # a late record changes the value
            e = events[-1]
            events.append(entity(10_000 + n, e.entity_id or "", e.operator_id,
                                 processing + rng.randrange(1, 3 * HOUR), event,
                                 round(rng.uniform(0, 100), 2),
                                 feature=e.feature_name or "", pipeline=e.pipeline_id))  # fmt: skip
    events += [
        entity(20_000, "user-late", "op-a", T + MIN, T, 1.0),
        entity(20_001, "user-late", "op-a", T + 2 * HOUR, T, 2.0),  # the correction
        entity(20_002, "user-tier", "op-a", T, T, "gold", value_type="STRING"),
        entity(20_003, "user-tier", "op-a", T + HOUR, T + HOUR, "silver", value_type="STRING"),
    ]
    return [e for e in events if e.processing_time <= NOW]


def expected(
    events: list[CaptureEvent], entity_id: str, at: int, by: str, known: int, since: int,
    scope: tuple[str, str] | None = ("p", "f"),
) -> list[tuple[object, ...]]:  # fmt: skip
    """Per pipeline, feature and operator (of ``scope``'s pipeline and feature, when
    given): the entity's latest value on the ``by`` axis, as the endpoint defines it."""

    def axis(e: CaptureEvent) -> int | None:
        return e.processing_time if by == "processing" else e.event_time

    def rank(e: CaptureEvent) -> tuple[object, ...]:
        none = float("-inf")  # the query orders descending with nulls last
        value = none if e.feature_value is None else e.feature_value
        event = none if e.event_time is None else e.event_time
        return (axis(e), e.processing_time, event, e.trace_id, value)

    latest: dict[tuple[str, str, str], CaptureEvent] = {}
    for e in events:
        t = axis(e)
        if e.entity_id != entity_id or t is None or not e.feature_name:
            continue
        if scope is not None and (e.pipeline_id, e.feature_name) != scope:
            continue
        key = (e.pipeline_id, e.feature_name, e.operator_id)
        if since <= e.processing_time <= known and since <= t <= at:
            if key not in latest or rank(e) > rank(latest[key]):
                latest[key] = e
    return [
        (*key, e.processing_time, e.event_time, e.feature_value, e.trace_id)
        for key, e in sorted(latest.items())
    ]


@pytest.fixture(scope="module")
def events() -> list[CaptureEvent]:
    return generate()


@pytest.fixture(scope="module")
def store(events: list[CaptureEvent], tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir: Path = tmp_path_factory.mktemp("store")
    writer = EventWriter(data_dir, "test")
    for i in range(0, len(events), 150):  # several files a day
        writer.write(events_to_table(events[i : i + 150]))
    return data_dir


@pytest.fixture(scope="module")
def client(store: Path) -> Iterator[TestClient]:
    with TestClient(create_app(store)) as c:
        yield c


def as_of(client: TestClient, entity_id: str, **params: object) -> dict:
    response = client.get(
        "/features/f/values/as-of", params={"pipeline_id": "p", "entity_id": entity_id, **params}
    )
    assert response.status_code == 200, response.text
    body: dict = response.json()
    return body


def answered(body: dict) -> list[tuple[object, ...]]:
    """As ``expected`` lists them; an answer about one feature is of pipeline p, feature f."""
    return [
        (v.get("pipeline_id", "p"), v.get("feature", "f"), v["operator_id"],
         v["processing_time"], v["event_time"], v["value"], v["trace_id"])
        for v in body["values"]
    ]  # fmt: skip


def test_random_moments_on_both_axes_match_the_events(
    client: TestClient, events: list[CaptureEvent], store: Path
) -> None:
    uncached = StoreQueries(store, caches=False)
    rng = random.Random(3)
    found = elsewhere = 0
    for _ in range(60):
        entity_id, at = rng.choice(ENTITIES), NOW - rng.randrange(3 * DAY)
        by = rng.choice(["processing", "event"])
        lookback, span = rng.choice([("1h", HOUR), ("1d", DAY), ("7d", 7 * DAY)])
        params: dict[str, object] = {"at": at, "by": by, "lookback": lookback}
        known = at
        if by == "event":
            known = at + rng.randrange(-HOUR, 4 * HOUR)
            params["known_at"] = known
        body = as_of(client, entity_id, **params)
        truth = expected(events, entity_id, at, by, known, at - span)
        assert answered(body) == truth, params
        assert (body["at"], body["known_at"], body["since"]) == (at, known, at - span)
        rows = uncached.entity_value_as_of(
            entity_id, at, by=by, known=known, since=at - span,  # type: ignore[arg-type]
            pipeline_id="p", feature="f",
        )  # fmt: skip
        assert [(r["operator_id"], r["trace_id"]) for r in rows] == [(t[2], t[6]) for t in truth]
        # the same moment over every pipeline and feature that captured the entity
        everything = client.get(f"/entities/{entity_id}/as-of", params=params)
        assert everything.status_code == 200, everything.text
        every = expected(events, entity_id, at, by, known, at - span, scope=None)
        assert answered(everything.json()) == every
        found += len(truth)
        elsewhere += sum(t[:2] != ("p", "f") for t in every)
    assert found > 40 and elsewhere > 40  # most moments have values to compare


def test_a_late_correction_shows_from_the_moment_it_was_processed(client: TestClient) -> None:
    def value(**params: object) -> object:
        [v] = as_of(client, "user-late", **params)["values"]
        return v["value"]

    # by event time: as known before the correction, then after it
    assert value(at=T + 30_000, by="event", known_at=T + HOUR) == 1.0
    assert value(at=T + 30_000, by="event") == 2.0  # known_at defaults to now
    # by processing time: what the pipeline held at each moment
    assert value(at=T + HOUR) == 1.0
    assert value(at=T + 3 * HOUR) == 2.0
    assert as_of(client, "user-late", at=T)["values"] == []  # not yet processed
    assert as_of(client, "user-late", at=T - MIN, by="event")["values"] == []


def test_times_are_iso_or_epoch_ms_and_values_keep_their_type(client: TestClient) -> None:
    iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime((T + 30 * MIN) / 1000)) + "Z"
    body = as_of(client, "user-tier", at=iso)
    assert body["at"] == (T + 30 * MIN) // 1000 * 1000
    assert [(v["value_type"], v["value"]) for v in body["values"]] == [("STRING", "gold")]
    assert as_of(client, "user-tier", at=T + 2 * HOUR)["values"][0]["value"] == "silver"


@pytest.mark.parametrize(
    ("params", "status", "says"),
    [
        ({"at": "yesterday"}, 422, "ISO-8601"),
        ({"at": "99999999999999999999"}, 422, "9999-12-31"),
        ({"at": NOW, "known_at": NOW}, 422, "by=event"),
        ({"at": NOW, "by": "event", "known_at": "soon"}, 422, "known_at"),
        ({"at": NOW, "lookback": "a week"}, 422, "7d"),
        ({"at": NOW, "by": "wall"}, 422, "by"),
        ({}, 422, "at"),
        ({"at": NOW, "pipeline_id": "q"}, 404, "Known: other, p"),
    ],
)
def test_bad_input_is_a_4xx_that_says_what_to_change(
    client: TestClient, params: dict[str, object], status: int, says: str
) -> None:
    response = client.get(
        "/features/f/values/as-of", params={"pipeline_id": "p", "entity_id": "user-1", **params}
    )
    assert response.status_code == status
    assert says in response.json()["detail"]


@pytest.mark.parametrize("strangers", [0, 120])  # entities the store never saw
@pytest.mark.parametrize("by", ["processing", "event"])
def test_many_lookups_in_one_request_match_the_events(
    client: TestClient, events: list[CaptureEvent], strangers: int, by: str
) -> None:
    rng = random.Random(strangers)
    people = [*ENTITIES, "user-late", "user-tier"]
    lookups = [(rng.choice(people), NOW - rng.randrange(3 * DAY)) for _ in range(200)]
    lookups += [(f"stranger-{i}", NOW - rng.randrange(3 * DAY)) for i in range(strangers)]
    rng.shuffle(lookups)
    known = NOW - DAY
    for scope in (None, ("p", "f")):
        body: dict[str, object] = {
            "lookups": [{"entity_id": e, "at": at} for e, at in lookups],
            "by": by, "lookback": "1d",
        }  # fmt: skip
        if by == "event":
            body["known_at"] = known
        if scope is not None:
            body["pipeline_id"], body["features"] = scope[0], [scope[1]]
        response = client.post("/entities/as-of", json=body)
        assert response.status_code == 200, response.text
        answers = response.json()["answers"]
        assert [(a["entity_id"], a["at"]) for a in answers] == lookups
        for (entity_id, at), answer in zip(lookups, answers, strict=True):
            k = at if by == "processing" else known
            assert answered(answer) == expected(
                events, entity_id, at, by, k, at - DAY, scope=scope
            ), (entity_id, at)
    assert sum(len(a["values"]) for a in answers) > 50


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({}, 422, "lookups"),
        ({"lookups": []}, 422, "at least 1"),
        ({"lookups": [{"entity_id": "u", "at": 1}] * 10_001}, 422, "at most 10000"),
        ({"lookups": [{"entity_id": "u", "at": 1}, {"entity_id": "u", "at": "x"}]}, 422,
         "lookups[1].at"),
        ({"lookups": [{"entity_id": "u", "at": 1}], "known_at": 5}, 422, "by=event"),
        ({"lookups": [{"entity_id": "u", "at": 1}], "lookback": "ever"}, 422, "lookback"),
        ({"lookups": [{"entity_id": "u", "at": 1}], "pipeline_id": "q"}, 404, "Known: other, p"),
    ],
)  # fmt: skip
def test_bad_lookups_are_a_4xx_that_says_what_to_change(
    client: TestClient, body: dict[str, object], status: int, says: str
) -> None:
    response = client.post("/entities/as-of", json=body)
    assert response.status_code == status
    assert says in response.json()["detail"]
