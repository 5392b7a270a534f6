"""GET /features/{feature}/compare/windows: a PERSONAL feature's pipeline and its new
version, window by window, with no entity data at all.

The test fires 5-minute windows per merchant for both versions. The new one runs on
three subtasks instead of two, has one merchant's value wrong in one window, loses
one merchant's fire in another, misses a window, fires one the old one never fired,
and has not fired the latest windows yet. It sums the fires itself to say what the
endpoint must answer.
"""

from __future__ import annotations

import random
import time
from collections import defaultdict
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from faro import CaptureEvent, EventType, OperatorType
from faro.core.events import FeatureStats
from tests.api.serving import client_over

MIN, HOUR = 60_000, 3_600_000
SIZE = 5 * MIN
UNTIL = (int(time.time() * 1000) // HOUR) * HOUR - 2 * MIN
WINDOWS = [UNTIL - 3 * HOUR + k * SIZE for k in range(36)]  # window starts
MERCHANTS = [f"m{i}" for i in range(10)]
WRONG = (WINDOWS[3], "m4")  # the new version's value is off here
LOST = (WINDOWS[7], "m2")  # ... its fire is missing here
SKIPPED = WINDOWS[10]  # ... and this whole window
EXTRA = UNTIL - 3 * HOUR - SIZE  # it fired a window before the old version started
BEHIND = set(WINDOWS[-2:])  # it has not fired these yet
FEATURE = "spend_5m"


def fire(pipeline: str, start: int, merchant: str, subtasks: int, n: int, spend: float | None,
         rng: random.Random) -> CaptureEvent:  # fmt: skip
    stats = FeatureStats(
        FEATURE, count=1, null_count=int(spend is None), sum=spend,
        sum_sq=None if spend is None else spend * spend, min=spend, max=spend,
    )  # fmt: skip
    return CaptureEvent(
        f"{pipeline}-{start}-{merchant}", EventType.AGGREGATE, pipeline, "spend-window",
        OperatorType.WINDOW, start + SIZE + rng.randrange(100, 3000),
        subtask_index=int(merchant[1:]) % subtasks, features=[FEATURE], input_count=n,
        output_count=1, window_start=start, window_end=start + SIZE, feature_stats=[stats],
    )  # fmt: skip


def generate() -> list[CaptureEvent]:
    rng = random.Random(9)
    events = []
    for start in WINDOWS:
        for merchant in MERCHANTS:
            n = rng.randrange(1, 40)
            spend = round(rng.uniform(0, 900), 2)
            if rng.random() < 0.05 and (start, merchant) != WRONG:
                spend = None
            events.append(fire("v1", start, merchant, 2, n, spend, rng))
            if start == SKIPPED or start in BEHIND or (start, merchant) == LOST:
                continue
            if (start, merchant) == WRONG:
                spend += 5.0  # type: ignore[operator]
            events.append(fire("v2", start, merchant, 3, n, spend, rng))
    events.append(fire("v2", EXTRA, "m1", 3, 4, 12.5, rng))
    return events


def totals(events: list[CaptureEvent], pipeline: str) -> dict[int, dict[str, object]]:
    """Per window start, the fires summed as the endpoint must sum them."""
    found: dict[int, dict[str, object]] = defaultdict(lambda: {
        "input_count": 0, "output_count": 0, "values": 0, "nulls": 0, "sum": None,
        "min": None, "max": None,
    })  # fmt: skip
    for e in events:
        if e.pipeline_id != pipeline or e.window_start is None:
            continue
        w = found[e.window_start]
        [s] = e.feature_stats
        w["input_count"] += e.input_count  # type: ignore[operator]
        w["output_count"] += e.output_count  # type: ignore[operator]
        w["values"] += s.count  # type: ignore[operator]
        w["nulls"] += s.null_count  # type: ignore[operator]
        if s.sum is not None:
            w["sum"] = s.sum + (w["sum"] or 0.0)  # type: ignore[operator]
            w["min"] = s.min if w["min"] is None else min(w["min"], s.min)  # type: ignore[type-var]
            w["max"] = s.max if w["max"] is None else max(w["max"], s.max)  # type: ignore[type-var]
    return dict(found)


@pytest.fixture(scope="module")
def events() -> list[CaptureEvent]:
    return generate()


@pytest.fixture(scope="module")
def client(
    events: list[CaptureEvent], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    with client_over(events, tmp_path_factory.mktemp("store")) as c:
        yield c


def compare(client: TestClient, **params: object) -> dict:
    response = client.get(f"/features/{FEATURE}/compare/windows", params=params)
    assert response.status_code == 200, response.text
    answer: dict = response.json()
    return answer


def test_two_versions_are_judged_window_by_window(
    client: TestClient, events: list[CaptureEvent]
) -> None:
    old, new = totals(events, "v1"), totals(events, "v2")
    since = UNTIL - 4 * HOUR
    both = sorted(s for s in old.keys() & new.keys() if since <= s + SIZE < UNTIL)
    differs = {}
    for s in both:
        measures = [m for m in ("input_count", "output_count", "values", "nulls")
                    if old[s][m] != new[s][m]]  # fmt: skip
        measures += [m for m in ("sum", "min", "max")
                     if old[s][m] != pytest.approx(new[s][m], rel=1e-9)]  # fmt: skip
        if measures:
            differs[s] = measures
    assert set(differs) == {WRONG[0], LOST[0]} and "sum" in differs[WRONG[0]]
    assert {"input_count", "output_count", "values"} <= set(differs[LOST[0]])

    answer = compare(client, pipeline_id="v1", against="v2", window="4h", until=UNTIL)

    assert (answer["operator_id"], answer["against_operator_id"]) == ("spend-window",) * 2
    assert answer["compared"] == len(both)
    assert answer["mismatched"] == len(differs)
    assert answer["matched"] == len(both) - len(differs)
    assert [(w["window_start"], w["differs"]) for w in answer["mismatches"]] == sorted(
        differs.items()
    )
    for w in answer["mismatches"]:
        for side, expected in (("pipeline", old), ("against", new)):
            got = {k: v for k, v in w[side].items() if k != "last_fire"}
            assert got == pytest.approx(expected[w["window_start"]])
    assert answer["differing"] == {
        m: sum(m in d for d in differs.values())
        for m in ("input_count", "output_count", "values", "nulls", "sum", "min", "max")
    }
    assert answer["only_in_pipeline"] == 1  # the skipped window; those behind are pending
    # the last window ends at UNTIL itself, outside the window (its end is exclusive)
    assert answer["pending"] == len([s for s in BEHIND if s + SIZE < UNTIL]) == 1
    assert answer["only_in_against"] == 1
    assert [(w["window_start"], w["pipeline"] is None) for w in answer["one_sided"]] == [
        (EXTRA, True),
        (SKIPPED, False),
    ]


def test_limit_shortens_only_the_lists(client: TestClient) -> None:
    full = compare(client, pipeline_id="v1", against="v2", window="4h", until=UNTIL)
    short = compare(client, pipeline_id="v1", against="v2", window="4h", until=UNTIL, limit=1)
    assert short["mismatches"] == full["mismatches"][:1]
    assert short["one_sided"] == full["one_sided"][:1]
    counts = ("compared", "matched", "mismatched", "only_in_pipeline", "pending", "differing")
    assert [short[c] for c in counts] == [full[c] for c in counts]


def test_a_feature_with_no_entity_values_cannot_be_compared_record_by_record(
    client: TestClient,
) -> None:
    records = client.get(f"/features/{FEATURE}/compare",
                         params={"pipeline_id": "v1", "against": "v2", "until": UNTIL})  # fmt: skip
    assert records.status_code == 422 and "aggregate statistics" in records.text
    assert compare(client, pipeline_id="v1", against="v2", until=UNTIL)["compared"] > 0


@pytest.mark.parametrize(
    ("params", "status", "says"),
    [
        ({"pipeline_id": "v1", "against": "v3"}, 404, "unknown pipeline 'v3'"),
        ({"pipeline_id": "v1", "against": "v2", "operator_id": "spend"}, 404, "spend-window"),
        ({"pipeline_id": "v1"}, 422, "both sides are operator 'spend-window'"),
        ({"pipeline_id": "v1", "against": "v2", "until": UNTIL + 30 * 24 * HOUR}, 422,
         "no window of pipeline 'v1'"),
    ],
)  # fmt: skip
def test_bad_questions_get_a_4xx_that_says_why(
    client: TestClient, params: dict[str, object], status: int, says: str
) -> None:
    response = client.get(f"/features/{FEATURE}/compare/windows", params={"until": UNTIL, **params})
    assert response.status_code == status, response.text
    assert says in response.text


def test_a_misspelled_feature_is_named(client: TestClient) -> None:
    response = client.get("/features/spend_5min/compare/windows", params={"pipeline_id": "v1"})
    assert response.status_code == 404 and FEATURE in response.text
