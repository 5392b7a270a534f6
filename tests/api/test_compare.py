"""GET /features/{feature}/compare: a pipeline in production and its shadow.

The test plays both: the shadow samples fewer entities, processes each record a
little later, has a bug from one hour on, loses some records, recomputes one,
makes one the production pipeline never made, and has not caught up yet. It
computes from the events what the endpoint must say.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Iterator

import numpy as np
import pytest
from fastapi.testclient import TestClient

from faro import CaptureEvent, EventType, FeatureValueType, OperatorType
from faro.api.models import Value
from faro.core.sampling import is_sampled
from tests.api.serving import client_over

MIN, HOUR = 60_000, 3_600_000
UNTIL = (int(time.time() * 1000) // HOUR) * HOUR - 7 * MIN  # not on an hour: partial hours
WINDOW = 4 * HOUR
SINCE = UNTIL - WINDOW
PROD_RATE, SHADOW_RATE = 0.5, 0.25
USERS = [f"user-{i}" for i in range(80)]
BUG_FROM = SINCE + 2 * HOUR  # the shadow's bug ships here (event time)
SHADOW_REACHED = UNTIL - 25 * MIN  # the shadow has processed up to here
FEATURE = "spend_1h"


def entity(
    pipeline: str, op: str, entity_id: str, event_time: int, processing: int, value: Value,
    rate: float, *, feature: str = FEATURE, value_type: str = "SCALAR_DOUBLE",
) -> CaptureEvent:  # fmt: skip
    return CaptureEvent(
        f"{pipeline}-{op}-{entity_id}-{event_time}-{processing}", EventType.ENTITY, pipeline, op,
        OperatorType.WINDOW, processing, features=[feature], entity_id=entity_id,
        feature_name=feature, feature_value=value, value_type=FeatureValueType(value_type),
        event_time=event_time, sample_rate=rate,
    )  # fmt: skip


def generate() -> list[CaptureEvent]:
    """Ten-minute windows per user over six hours (two before the compared window);
    a window's result carries its last millisecond as event time."""
    rng = random.Random(3)
    events = []
    for window_end in range(SINCE - 2 * HOUR, UNTIL + 10 * MIN, 10 * MIN):
        et = window_end - 1
        for user in USERS:
            if not is_sampled(user, PROD_RATE) or rng.random() < 0.3:
                continue  # no purchase in this window
            value = round(rng.uniform(0, 500), 2)
            fired = et + rng.randrange(1000, 5000)
            events.append(entity("prod", "spend", user, et, fired, value, PROD_RATE))
            if not is_sampled(user, SHADOW_RATE) or et > SHADOW_REACHED:
                continue
            if rng.random() < 0.04:
                continue  # lost in the shadow
            shadow = value
            if et >= BUG_FROM and rng.random() < 0.2:
                shadow = round(value * 1.1, 2)
            late = fired + rng.randrange(50, 2000)
            if rng.random() < 0.03:  # fired again for a late record: the later value counts
                events.append(entity("shadow", "spend-v2", user, et, late, -1.0, SHADOW_RATE))
                late += 60_000
            events.append(entity("shadow", "spend-v2", user, et, late, shadow, SHADOW_RATE))
    # a record only the shadow made
    extra = next(u for u in USERS if is_sampled(u, SHADOW_RATE))
    events.append(entity("shadow", "spend-v2", extra, SINCE + 5 * MIN, SINCE + 6 * MIN, 1.0,
                         SHADOW_RATE))  # fmt: skip
    events += [
        CaptureEvent(f"agg-{p}", EventType.AGGREGATE, p, op, OperatorType.WINDOW, UNTIL - HOUR,
                     features=[FEATURE, "income"], input_count=10, output_count=10)
        for p, op in (("prod", "spend"), ("shadow", "spend-v2"))
    ]  # fmt: skip
    return events


def latest(events: list[CaptureEvent], pipeline: str) -> dict[tuple[str, int], CaptureEvent]:
    """Per record (entity, event time) in the window, the value processed last."""
    found: dict[tuple[str, int], CaptureEvent] = {}
    for e in sorted(events, key=lambda e: e.processing_time):
        if e.pipeline_id == pipeline and e.feature_name == FEATURE:
            assert e.entity_id is not None and e.event_time is not None
            if SINCE <= e.event_time < UNTIL:
                found[(e.entity_id, e.event_time)] = e
    return found


@pytest.fixture(scope="module")
def events() -> list[CaptureEvent]:
    return generate()


@pytest.fixture(scope="module")
def client(
    events: list[CaptureEvent], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    with client_over(events, tmp_path_factory.mktemp("store")) as c:
        yield c


def compare(client: TestClient, feature: str = FEATURE, **params: object) -> dict:
    response = client.get(f"/features/{feature}/compare", params=params)
    assert response.status_code == 200, response.text
    answer: dict = response.json()
    return answer


def test_a_shadow_pipeline_is_judged_record_by_record(
    client: TestClient, events: list[CaptureEvent]
) -> None:
    prod, shadow = latest(events, "prod"), latest(events, "shadow")
    shadow_newest = max(e.event_time for e in events
                        if e.pipeline_id == "shadow" and e.event_time is not None)  # fmt: skip
    both = sorted(prod.keys() & shadow.keys(), key=lambda k: (k[1], k[0]))
    bad = [k for k in both if prod[k].feature_value != shadow[k].feature_value]
    only_prod = [k for k in prod.keys() - shadow.keys() if is_sampled(k[0], SHADOW_RATE)]
    missing = sorted((k for k in only_prod if k[1] <= shadow_newest), key=lambda k: (k[1], k[0]))
    only_shadow = sorted(shadow.keys() - prod.keys(), key=lambda k: (k[1], k[0]))
    assert bad and missing and only_shadow and len(missing) < len(only_prod)  # all cases occur

    answer = compare(client, pipeline_id="prod", against="shadow", window="4h", until=UNTIL,
                     limit=10_000)  # fmt: skip

    assert (answer["operator_id"], answer["against_operator_id"]) == ("spend", "spend-v2")
    assert (answer["since"], answer["until"]) == (SINCE, UNTIL)
    assert (answer["sample_rate"], answer["against_sample_rate"]) == (PROD_RATE, SHADOW_RATE)
    assert answer["compared"] == len(both)
    assert answer["mismatched"] == len(bad)
    assert answer["matched"] == len(both) - len(bad)
    assert answer["mismatch_rate"] == pytest.approx(len(bad) / len(both))
    assert answer["only_in_pipeline"] == len(missing)
    assert answer["only_in_against"] == len(only_shadow)
    assert answer["pending"] == len(only_prod) - len(missing)
    assert answer["out_of_sample"] == len(prod.keys() - shadow.keys()) - len(only_prod)
    diffs = [abs(prod[k].feature_value - shadow[k].feature_value) for k in bad]  # type: ignore[operator]
    assert answer["max_abs_diff"] == pytest.approx(max(diffs))
    signed = [shadow[k].feature_value - prod[k].feature_value for k in both]  # type: ignore[operator]
    assert answer["mean_diff"] == pytest.approx(sum(signed) / len(signed))
    assert answer["mean_diff"] > 0  # the shadow's bug raises values
    delays = [shadow[k].processing_time - prod[k].processing_time for k in both]
    assert answer["delay_p50_ms"] == pytest.approx(np.percentile(delays, 50))
    assert answer["delay_p95_ms"] == pytest.approx(np.percentile(delays, 95))

    fields = ("entity_id", "event_time", "value", "against_value", "processed_at",
              "against_processed_at")  # fmt: skip
    assert [tuple(m[f] for f in fields) for m in answer["mismatches"]] == [
        (*k, prod[k].feature_value, shadow[k].feature_value, prod[k].processing_time,
         shadow[k].processing_time)
        for k in bad
    ]  # fmt: skip
    one_sided = [(r["entity_id"], r["event_time"], r["side"], r["value"])
                 for r in answer["one_sided"]]  # fmt: skip
    expected = sorted(
        [(*k, "pipeline", prod[k].feature_value) for k in missing]
        + [(*k, "against", shadow[k].feature_value) for k in only_shadow],
        key=lambda r: (r[1], r[0]),
    )
    assert one_sided == expected

    hours: dict[int, list[int]] = {}
    for column, keys in enumerate((both, bad, missing, only_shadow)):
        for _, et in keys:
            hours.setdefault(et - et % HOUR, [0, 0, 0, 0])[column] += 1
    assert [(h["start"], h["compared"], h["mismatched"], h["only_in_pipeline"],
             h["only_in_against"]) for h in answer["hours"]] == [
        (start, *counts) for start, counts in sorted(hours.items())
    ]  # fmt: skip
    assert all(h["mismatched"] == 0 for h in answer["hours"] if h["start"] + HOUR <= BUG_FROM)


def test_limit_shortens_the_lists_not_the_counts(client: TestClient) -> None:
    full = compare(client, pipeline_id="prod", against="shadow", window="4h", until=UNTIL,
                   limit=10_000)  # fmt: skip
    short = compare(client, pipeline_id="prod", against="shadow", window="4h", until=UNTIL,
                    limit=3)  # fmt: skip
    assert short["mismatches"] == full["mismatches"][:3]
    assert short["one_sided"] == full["one_sided"][:3]
    assert {k: v for k, v in short.items() if k not in ("mismatches", "one_sided")} == {
        k: v for k, v in full.items() if k not in ("mismatches", "one_sided")
    }


def test_the_sides_swap(client: TestClient) -> None:
    ab = compare(client, pipeline_id="prod", against="shadow", window="4h", until=UNTIL)
    ba = compare(client, pipeline_id="shadow", against="prod", window="4h", until=UNTIL)
    assert (ba["compared"], ba["mismatched"]) == (ab["compared"], ab["mismatched"])
    assert ba["only_in_pipeline"] == ab["only_in_against"]
    assert ba["only_in_against"] == ab["only_in_pipeline"]
    assert ba["delay_p50_ms"] == pytest.approx(-ab["delay_p50_ms"])


# (feature, value type, one operator's value, the other's), a record each
TYPED: list[tuple[str, str, Value, Value]] = [
    ("tier", "STRING", "gold", "gold"), ("tier", "STRING", "gold", "Gold"),
    ("vip", "BOOLEAN", True, True), ("vip", "BOOLEAN", True, False),
    ("emb", "VECTOR_DOUBLE", [1.0, 2.5], [1.0, 2.5 + 1e-12]),
    ("emb", "VECTOR_DOUBLE", [1.0, 2.5], [1.0, 2.6]),
    ("emb", "VECTOR_DOUBLE", [1.0, 2.5], [1.0]),
    ("visits", "SCALAR_LONG", 7, 7), ("visits", "SCALAR_LONG", 7, 8),
    ("score", "SCALAR_DOUBLE", float("nan"), float("nan")),
    ("score", "SCALAR_DOUBLE", float("inf"), float("inf")),
    ("score", "SCALAR_DOUBLE", None, None), ("score", "SCALAR_DOUBLE", None, 0.0),
    ("score", "SCALAR_DOUBLE", 100.0, 100.05), ("score", "SCALAR_DOUBLE", 1.0, 1.0 + 1e-12),
]  # fmt: skip


@pytest.fixture(scope="module")
def typed_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """Two operators of one pipeline, with values of every type."""
    t = UNTIL - HOUR

    events = []
    for n, (feature, kind, a, b) in enumerate(TYPED):
        for op, value in (("v1", a), ("v2", b)):
            events.append(entity("p", op, f"u{n}", t + n, t + n + 10, value, 1.0,
                                 feature=feature, value_type=kind))  # fmt: skip
    with client_over(events, tmp_path_factory.mktemp("typed")) as c:
        yield c


@pytest.mark.parametrize(
    ("feature", "abs_tol", "matched", "mismatched"),
    [("tier", 1e-9, 1, 1), ("vip", 1e-9, 1, 1), ("emb", 1e-9, 1, 2), ("visits", 1e-9, 1, 1),
     ("score", 1e-9, 4, 2), ("score", 0.1, 5, 1)],
)  # fmt: skip
def test_values_of_every_type_compare_as_the_skew_check_compares_them(
    typed_client: TestClient, feature: str, abs_tol: float, matched: int, mismatched: int
) -> None:
    answer = compare(typed_client, feature, pipeline_id="p", operator_id="v1",
                     against_operator_id="v2", until=UNTIL, abs_tol=abs_tol)  # fmt: skip
    assert answer["against"] == "p"
    assert (answer["matched"], answer["mismatched"]) == (matched, mismatched)
    numbers = [m["abs_diff"] for m in answer["mismatches"] if m["abs_diff"] is not None]
    assert answer["max_abs_diff"] == (max(numbers) if numbers else None)
    signed = [
        float(b) - float(a) for f, _, a, b in TYPED
        if f == feature and isinstance(a, (int, float)) and isinstance(b, (int, float))
        and math.isfinite(float(b) - float(a))
    ]  # fmt: skip
    assert answer["mean_diff"] == (pytest.approx(sum(signed) / len(signed)) if signed else None)


def test_a_typed_mismatch_is_listed_with_both_values(typed_client: TestClient) -> None:
    answer = compare(typed_client, "emb", pipeline_id="p", operator_id="v1",
                     against_operator_id="v2", until=UNTIL)  # fmt: skip
    assert [(m["value"], m["against_value"], m["abs_diff"]) for m in answer["mismatches"]] == [
        ([1.0, 2.5], [1.0, 2.6], None),
        ([1.0, 2.5], [1.0], None),
    ]


@pytest.mark.parametrize(
    ("params", "status", "says"),
    [
        ({"pipeline_id": "prod", "against": "shadw"}, 404, "did you mean shadow"),
        ({"pipeline_id": "prod", "against": "shadow", "operator_id": "spnd"}, 404, "spend"),
        ({"pipeline_id": "prod"}, 422, "both sides are operator 'spend'"),
        ({"pipeline_id": "prod", "against": "shadow", "window": "4 hours"}, 422, "window"),
        ({"pipeline_id": "prod", "against": "shadow", "limit": 10_001}, 422, "limit"),
        ({"pipeline_id": "prod", "against": "shadow", "abs_tol": -1}, 422, "abs_tol"),
        ({"pipeline_id": "prod", "against": "shadow", "until": "yesterday"}, 422, "until"),
    ],
)
def test_bad_questions_get_a_4xx_that_says_why(
    client: TestClient, params: dict[str, object], status: int, says: str
) -> None:
    response = client.get(f"/features/{FEATURE}/compare", params={"until": UNTIL, **params})
    assert response.status_code == status, response.text
    assert says in response.text


def test_a_feature_without_values_is_named(client: TestClient) -> None:
    misspelled = client.get("/features/spend_1hr/compare", params={"pipeline_id": "prod"})
    assert misspelled.status_code == 404 and FEATURE in misspelled.text
    aggregate_only = client.get("/features/income/compare", params={"pipeline_id": "prod"})
    assert aggregate_only.status_code == 422 and "aggregate statistics" in aggregate_only.text
    later = {"pipeline_id": "prod", "against": "shadow", "until": UNTIL + 30 * 24 * HOUR}
    quiet = client.get(f"/features/{FEATURE}/compare", params=later)
    assert quiet.status_code == 422 and "no ENTITY values" in quiet.text


def test_named_operators_with_nothing_in_the_window_compare_nothing(client: TestClient) -> None:
    answer = compare(client, pipeline_id="prod", against="shadow", operator_id="spend",
                     against_operator_id="spend-v2", until=UNTIL + 30 * 24 * HOUR)  # fmt: skip
    counts = ("compared", "mismatched", "only_in_pipeline", "only_in_against", "pending")
    assert [answer[c] for c in counts] == [0] * len(counts)
    assert (answer["mismatch_rate"], answer["delay_p50_ms"], answer["sample_rate"]) == (
        None, None, None,
    )  # fmt: skip
    assert answer["hours"] == answer["mismatches"] == answer["one_sided"] == []


def test_an_operator_of_several_must_be_named(typed_client: TestClient) -> None:
    response = typed_client.get(
        "/features/tier/compare", params={"pipeline_id": "p", "until": UNTIL}
    )
    assert response.status_code == 422
    assert "v1, v2" in response.text and "operator_id=" in response.text
