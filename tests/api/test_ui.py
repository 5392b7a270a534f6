"""/ui in real headless Chromium, against a real `faro serve`: what the page shows
is what the JSON endpoints answer."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import shutil
import subprocess
import time
from collections import defaultdict
from collections.abc import Iterator
from html.parser import HTMLParser

import httpx
import pyarrow as pa
import pytest

from faro import CaptureEvent, EventType
from faro.detect import Finding, Severity, ViolationType, ledger
from faro.store.columns import events_to_table
from faro.store.writer import DEAD_LETTER_SCHEMA, EventWriter
from tests.api.dataset import MIN, MISSING_WINDOW, generate, seed
from tests.api.serving import running_api

pytestmark = pytest.mark.browser
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class Rows(HTMLParser):
    """Cell texts of every element with a data-testid, by that id."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, list[list[str]]] = {}
        self.attrs: dict[str, list[dict[str, str | None]]] = {}
        self._open: list[str] = []
        self._cells: list[str] | None = None
        self.body: dict[str, str | None] = {}
        self.html = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "body":
            self.body = a
        if a.get("data-testid"):
            self.attrs.setdefault(a["data-testid"], []).append(a)  # type: ignore[index]
        if tag == "tr" and a.get("data-testid"):
            self._open.append(a["data-testid"])  # type: ignore[arg-type]
            self._cells = []
        elif tag == "td" and self._cells is not None:
            self._cells.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "tr" and self._open and self._cells is not None:
            self.rows.setdefault(self._open.pop(), []).append(self._cells)
            self._cells = None

    def handle_data(self, data: str) -> None:
        if self._cells:
            self._cells[-1] += data


def dom(url: str) -> Rows:
    assert CHROMIUM, "Chromium is missing: `make test` installs the Debian package chromium"
    for budget in (10_000, 30_000):
        out = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             f"--virtual-time-budget={budget}", "--dump-dom", url],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        rows = Rows()
        rows.feed(out.stdout)
        rows.html = out.stdout
        if rows.body.get("data-loaded") == "true":
            return rows
    raise AssertionError(f"the page did not finish loading: {out.stderr[-2000:]}")


DATASET = generate(seed=5)


def shadow() -> list[CaptureEvent]:
    """A new version of user-feature-pipeline in shadow: it loses some records and
    computes some values differently."""
    events = []
    mine = [e for e in DATASET.events if e.pipeline_id == "user-feature-pipeline"]
    for i, e in enumerate(sorted(mine, key=lambda e: e.event_id)):
        if e.event_type is EventType.ENTITY and i % 17:
            value = e.feature_value + 1.0 if i % 11 == 0 and e.feature_value else e.feature_value
            events.append(dataclasses.replace(
                e, event_id=f"{e.event_id}-v2", pipeline_id=SHADOW, feature_value=value,
                processing_time=e.processing_time + 900, trace_id=f"{e.trace_id}-v2",
            ))  # fmt: skip
    return events


SHADOW = "user-feature-pipeline-v2"
SHADOW_EVENTS = shadow()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    store = tmp_path_factory.mktemp("ui-store")
    seed(store, DATASET)
    EventWriter(store, "shadow").write(events_to_table(SHADOW_EVENTS))
    now = int(time.time() * 1000)
    rejected = {"topic": "capture", "partition": 1, "offset": 7, "key": None, "value": b"junk",
                "reason": "not Avro single-object encoded: got 6a756e6b", "received_at": now}
    EventWriter(store, "dead").write(
        events_to_table([]), dead_letters=pa.Table.from_pylist([rejected], DEAD_LETTER_SCHEMA)
    )
    stale = Finding(
        ViolationType.FRESHNESS, "order-pipeline", "order-agg-window", None, "silence_s",
        900.0, None, 300.0, Severity.HIGH, "order-agg-window is quiet",
    )  # fmt: skip
    ledger.record(store, [stale], now - 60_000, 300_000)
    with running_api(store, FARO_DETECT_INTERVAL="0") as url:
        yield url


def _operator_statuses(server: str) -> list[tuple[str, str, str]]:
    statuses = []
    for p in httpx.get(f"{server}/pipelines").json():
        health = httpx.get(f"{server}/pipelines/{p['pipeline_id']}/health").json()
        statuses += [
            (o["operator_id"], o["operator_type"], o["status"]) for o in health["operators"]
        ]
    return statuses


def test_the_page_shows_every_pipeline_operator_and_open_violation(server):
    before = _operator_statuses(server)
    page = dom(f"{server}/ui")
    after = _operator_statuses(server)
    assert 'data-testid="error"></div>' in page.html  # no endpoint failed
    pipelines = [p["pipeline_id"] for p in httpx.get(f"{server}/pipelines").json()]
    shown = [a["data-pipeline"] for a in page.attrs["pipeline"]]
    assert sorted(shown) == sorted(pipelines)
    # An operator near its threshold can turn STALE while the page loads: its status
    # must be one the API gave just before or just after.
    allowed: dict[tuple[str, str], set[str]] = defaultdict(set)
    for operator, kind, status in before + after:
        allowed[(operator, kind)].add(status)
    rows = page.rows["operator"]
    assert sorted((r[0], r[1]) for r in rows) == sorted((o, k) for o, k, _ in before)
    assert all(r[2] in allowed[(r[0], r[1])] for r in rows), (rows, before, after)
    [violation] = page.rows["violation"]
    assert violation[:4] == ["HIGH", "FRESHNESS", "order-pipeline", "order-agg-window"]
    assert violation[5] == "order-agg-window is quiet"


@pytest.mark.parametrize("ago", [None, 40])
def test_a_summary_link_shows_the_api_numbers(server, ago):
    """Over the last 24 hours, or over the hour that ended ``ago`` minutes ago."""
    params = {"pipeline_id": "order-pipeline", "window": "24h" if ago is None else "1h"}
    link = f"{server}/ui?pipeline=order-pipeline&feature=revenue&window={params['window']}"
    if ago is not None:
        params["until"] = str(DATASET.now - ago * MIN)
        link += f"&until={params['until']}"
    api = httpx.get(f"{server}/features/revenue/values/summary", params=params).json()
    assert api["count"] > 0

    def buckets() -> list[list[str]]:
        health = httpx.get(f"{server}/features/revenue/health", params=params).json()
        return [
            [_when(b["start"]), str(b["input_count"]), str(b["output_count"]),
             str(b["late_count"]), str(b["entity_values"])]
            for b in health["current"]["buckets"]
        ]  # fmt: skip

    before = buckets()
    page = dom(link)
    after = buckets()
    [row] = page.rows["summary-row"]
    assert row[:3] == [api["source"], str(api["count"]), str(api["nulls"])]
    assert row[4] == f"{api['mean']:.3f}"
    # the feature's health over the same window; a minute can turn between the calls
    assert page.rows["health-bucket"] in (before, after)
    assert sum(int(b[1]) for b in page.rows["health-bucket"]) > 0


def test_window_operators_show_fire_delay_and_the_window_that_never_fired(server):
    def shown() -> list[list[str]]:
        body = httpx.get(f"{server}/pipelines/order-pipeline/windows?window=1h").json()
        return [
            [o["operator_id"], str(o["windows"]), f"{o['window_length_ms'] / 1000:.1f}",
             *(f"{o['fire_delay'][k]:.1f}" for k in ("p50_seconds", "p95_seconds", "max_seconds")),
             f"{o['late_rate']:.3f}"]
            for o in body["operators"]
        ]  # fmt: skip

    before = shown()
    page = dom(f"{server}/ui")
    after = shown()
    [row] = page.rows["window-operator"]  # the other pipelines have no window operator
    assert row[:7] in (before[0], after[0])  # the hour can move a window out between calls
    assert row[:6] == ["order-agg-window", row[1], "60.0", "5.0", "5.0", "5.0"]
    start = DATASET.now - MISSING_WINDOW * MIN - MIN
    assert row[7] == f"1, the newest {_when(start)} to {_when(start + MIN)}"


def test_the_funnel_shows_each_stage_as_the_api_orders_it(server):
    def fmt(x: float | None) -> str:
        return "\u2013" if x is None else f"{x:.3f}"

    def shown() -> list[list[str]]:
        body = httpx.get(f"{server}/pipelines/order-pipeline/funnel?window=1h").json()
        return [
            [s["operator_id"], str(s["input_count"]), str(s["output_count"]),
             fmt(s["pass_rate"]), fmt(s["handoff_rate"]), fmt(s["survival"])]
            for s in body["stages"]
        ]  # fmt: skip

    before = shown()
    page = dom(f"{server}/ui")
    after = shown()
    # the other pipelines have one operator each: no funnel
    assert page.rows["funnel-stage"] in (before, after)
    assert len(before) == 4 and before[0][0] == "filter-big"  # a filter leads a window
    # the pipeline's operator table lists them in the same order, upstream first
    stages = [row[0] for row in before]
    assert [r[0] for r in page.rows["operator"] if r[0] in stages] == stages


def test_operators_on_several_subtasks_are_shown_side_by_side(server):
    def fmt(x: float | None, digits: int) -> str:
        return "\u2013" if x is None else f"{x:.{digits}f}"

    def busiest(o: dict) -> str:
        if o["busiest_subtask"] is None:  # no input at all
            return "\u2013"
        [share] = [d["input_share"] for d in o["detail"]
                   if d["subtask_index"] == o["busiest_subtask"]]  # fmt: skip
        return f"{o['busiest_subtask']} ({share * 100:.0f} %)"

    def shown() -> list[list[str]]:
        body = httpx.get(f"{server}/pipelines/order-pipeline/subtasks?window=1h").json()
        return [
            [o["operator_id"], str(o["subtasks"]),
             ", ".join(map(str, o["stalled"])) or "none", busiest(o),
             fmt(o["input_skew"], 2), fmt(o["slowest_watermark_subtask"], 0),
             fmt(o["watermark_spread_seconds"], 1)]
            for o in body["operators"] if o["subtasks"] > 1
        ]  # fmt: skip

    before = shown()
    page = dom(f"{server}/ui")
    after = shown()
    assert page.rows["subtask-operator"] in (before, after)
    # the dataset's two subtasks flush together; the window's second trails by 1 s
    assert [r[0] for r in before] == ["filter-big", "order-agg-window"]
    window = before[1]
    assert (window[2], window[5], window[6]) == ("none", "1", "1.0")


def test_the_store_is_shown_as_the_api_reports_it(server):
    page = dom(f"{server}/ui")
    s = httpx.get(f"{server}/store").json()
    newest = dt.datetime.fromtimestamp(s["newest"] / 1000, tz=dt.timezone.utc)
    assert page.rows["store"] == [[
        f"{s['events']:,}", f"{s['files']:,}", f"{s['bytes'] / 1e6:.1f}",
        newest.strftime("%Y-%m-%d %H:%M:%SZ"), "1",
        "not Avro single-object encoded: got 6a756e6b", str(s["partitions_to_compact"]),
    ]]  # fmt: skip
    assert s["events"] == len(DATASET.events) + len(SHADOW_EVENTS)


@pytest.mark.parametrize("pipeline", ["order-pipeline", "user-feature-pipeline"])
def test_the_feature_field_offers_the_pipelines_features(server, pipeline):
    page = dom(f"{server}/ui?pipeline={pipeline}")
    assert 'data-testid="error"></div>' in page.html
    offered = [(a["value"], a["data-entity-values"]) for a in page.attrs["feature-name"]]
    assert offered == [(n, str(v).lower()) for n, v in DATASET.features(pipeline).items()]


NONE = "\u2013"  # the en dash the page writes for a missing value


def _when(ms: int | None) -> str:
    """As the page writes times: UTC, to the second."""
    if ms is None:
        return NONE
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def _value(v: float | None) -> str:
    return NONE if v is None else f"{v:.3f}"


def test_an_entity_link_shows_its_lineage_and_one_trace(server):
    entity = "user-7"
    theirs = [e for e in SHADOW_EVENTS if e.entity_id == entity]
    seen = sorted(
        DATASET.entities(entity_id=entity) + theirs,
        key=lambda e: (e.processing_time, e.pipeline_id),
    )
    assert len(seen) - len(theirs) == 60  # 30 records, each seen by two pipelines
    trace = seen[0].trace_id
    page = dom(f"{server}/ui?entity={entity}&trace={trace}")
    assert 'data-testid="error"></div>' in page.html
    assert page.rows["lineage-step"] == [
        [_when(e.processing_time), e.pipeline_id, e.operator_id, e.operator_type.value,
         e.feature_name, _value(e.feature_value), _when(e.event_time), e.trace_id]
        for e in seen
    ]  # fmt: skip
    traced = sorted(
        (e for e in DATASET.events if e.trace_id == trace), key=lambda e: e.processing_time
    )
    assert [r[1] for r in page.rows["trace-event"]] == ["user-feature-pipeline", "fraud-pipeline"]
    assert page.rows["trace-event"] == [
        [_when(e.processing_time), e.pipeline_id, e.operator_id, e.operator_type.value,
         str(e.subtask_index), e.feature_name, _value(e.feature_value), _when(e.event_time)]
        for e in traced
    ]  # fmt: skip


def test_an_entity_link_with_a_moment_shows_its_values_then(server):
    entity = "user-7"
    seen = DATASET.entities(entity_id=entity) + [e for e in SHADOW_EVENTS if e.entity_id == entity]
    at = sorted(e.processing_time for e in seen)[len(seen) // 2]
    latest: dict[tuple[str, str, str], object] = {}
    for e in sorted(seen, key=lambda e: (e.processing_time, e.event_time, e.trace_id)):
        if at - 7 * 24 * 60 * MIN <= e.processing_time <= at:
            latest[(e.pipeline_id, e.feature_name or "", e.operator_id)] = e
    assert len(latest) >= 2
    page = dom(f"{server}/ui?entity={entity}&at={at}")
    assert 'data-testid="error"></div>' in page.html
    assert page.rows["as-of-value"] == [
        [p, f, op, _value(e.feature_value), _when(e.processing_time), _when(e.event_time)]
        for (p, f, op), e in sorted(latest.items())
    ]  # fmt: skip
    assert f"values as of {_when(at)}" in page.html
    assert len(page.rows["lineage-step"]) == len(seen)  # the lineage still shows in full


def test_a_moment_shows_the_page_as_it_was_then(server):
    """9.5 minutes ago: before the violation opened and before enrich first flushed."""
    at = DATASET.now - 570_000
    page = dom(f"{server}/ui?at={at}")
    assert 'data-testid="error"></div>' in page.html
    assert "violation" not in page.rows and "None open." in page.html
    assert "the store as it was then" in page.html
    expected = []
    for p in httpx.get(f"{server}/pipelines").json():
        url = f"{server}/pipelines/{p['pipeline_id']}"
        health = httpx.get(f"{url}/health", params={"at": at}).json()
        flow = httpx.get(f"{url}/operators", params={"window": "1h", "until": at}).json()
        rates = {o["operator_id"]: o for o in flow["operators"]}
        for o in health["operators"]:
            r = rates[o["operator_id"]]
            expected.append((o["operator_id"], o["operator_type"], o["status"],
                             _when(o["last_flush"]), r["input_per_minute"]))  # fmt: skip
    shown = [(r[0], r[1], r[2], r[3], float(r[5])) for r in page.rows["operator"]]
    assert sorted(s[:4] for s in shown) == sorted(e[:4] for e in expected)
    assert "enrich" not in [s[0] for s in shown]
    assert {s[2] for s in shown if s[0] == "dedupe"} == {"OK"}  # SILENT now
    for s, e in zip(sorted(shown), sorted(expected), strict=True):
        assert s[4] == pytest.approx(e[4], abs=0.05)


def test_an_entity_that_was_never_captured_is_explained_not_an_error(server):
    page = dom(f"{server}/ui?entity=nobody-at-all")
    assert 'data-testid="error"></div>' in page.html
    assert "lineage-step" not in page.rows
    assert "it was not sampled" in page.html


def test_a_comparison_link_shows_the_api_numbers(server):
    params = {"pipeline_id": "user-feature-pipeline", "against": SHADOW, "window": "24h",
              "until": str(DATASET.now), "limit": "20"}  # fmt: skip
    api = httpx.get(f"{server}/features/purchase_amount_7d/compare", params=params).json()
    assert api["mismatched"] > 0 and api["only_in_pipeline"] > 0  # the page has both to show
    page = dom(f"{server}/ui?compare=purchase_amount_7d&pipeline=user-feature-pipeline"
               f"&against={SHADOW}&window=24h&until={DATASET.now}")  # fmt: skip
    assert 'data-testid="error"></div>' in page.html
    [line] = re.findall(r'data-testid="comparison-line">(.*?)</p>', page.html)
    text = re.sub(r"<[^>]+>", "", line)
    assert text.startswith(f"{api['compared']} records both captured: {api['matched']} matched, "
                           f"{api['mismatched']} mismatched")  # fmt: skip
    assert f"{api['only_in_pipeline']} only in user-feature-pipeline/rolling-amount" in text
    assert f"minus user-feature-pipeline/rolling-amount {api['mean_diff']:.3f} on average" in text
    assert page.rows["comparison-hour"] == [
        [_when(h["start"]), str(h["compared"]), str(h["mismatched"]),
         str(h["only_in_pipeline"]), str(h["only_in_against"])]
        for h in api["hours"]
    ]  # fmt: skip
    assert page.rows["comparison-mismatch"] == [
        [m["entity_id"], _when(m["event_time"]), f"{m['value']:.3f}",
         f"{m['against_value']:.3f}", f"{m['abs_diff']:.3f}"]
        for m in api["mismatches"]
    ]  # fmt: skip
    assert [r[:3] for r in page.rows["comparison-one-sided"]] == [
        [r["entity_id"], _when(r["event_time"]), "user-feature-pipeline/rolling-amount"]
        for r in api["one_sided"]
    ]


def test_a_comparison_the_api_cannot_make_is_explained_not_an_error(server):
    page = dom(f"{server}/ui?compare=purchase_amount_7d&pipeline=fraud-pipeline"
               "&against=fraud-pipeline&window=24h")  # fmt: skip
    assert 'data-testid="error"></div>' in page.html
    assert "both sides are operator" in page.html
    assert "comparison-explained" in page.attrs and "comparison-line" not in page.attrs


def test_the_root_redirects_to_the_page(server):
    assert httpx.get(f"{server}/", follow_redirects=False).headers["location"] == "/ui"
