"""PyFlink jobs traced end to end into a real `faro serve`: what the API answers
about them.

Apart from the adapter's own tests because the API needs pyarrow >= 16, which
apache-flink 1.20 (through apache-beam) excludes: `make test-flink120` runs
every other PyFlink test on 1.20 without this module.
"""

from pathlib import Path

import httpx
import pytest
from pyflink.common import Types

from faro import FaroConfig, HttpCaptureEventSink
from faro.flink import FaroFlink
from tests.api.serving import running_api
from tests.flink.conftest import CLOSE_GRACE_S
from tests.flink.jobs import (
    ORDER_TYPE,
    SMALL,
    WINDOW_MS,
    BigOrders,
    OrderAggFn,
    collect,
    order_stream,
    orders,
    window_job,
)
from tests.support import wait_for

pytestmark = pytest.mark.flink


def test_a_flink_jobs_gap_in_event_time_is_reported_as_missing_windows(
    flink_env, tmp_path: Path
) -> None:
    """The whole path: a traced PyFlink window job whose input has no orders in two
    of its windows, its HTTP sink posting to a real `faro serve`, and the endpoint."""
    every = orders(600)  # over six windows
    first = every[0].ts // WINDOW_MS * WINDOW_MS
    gap = {first + 2 * WINDOW_MS, first + 3 * WINDOW_MS}
    data = [o for o in every if o.ts // WINDOW_MS * WINDOW_MS not in gap]
    fired = {o.ts // WINDOW_MS * WINDOW_MS for o in data}
    assert gap < set(range(min(fired), max(fired), WINDOW_MS))  # inside, not at the ends
    with running_api(tmp_path) as api:
        faro = FaroFlink("order-pipeline", HttpCaptureEventSink.factory(f"{api}/ingest"))
        traced = faro.window_trace(OrderAggFn(), FaroConfig(features=["revenue"]), "agg")
        collect(window_job(flink_env(2), data, traced))

        def answer() -> dict | None:
            body = httpx.get(f"{api}/pipelines/order-pipeline/windows?window=1h&limit=1000")
            ops = body.json()["operators"] if body.status_code == 200 else []
            done = ops and sum(w["input_count"] for w in ops[0]["recent"]) == len(data)
            return ops[0] if done else None

        assert wait_for(lambda: answer() is not None, CLOSE_GRACE_S), "not every fire arrived"
        got = answer()
        parallel = httpx.get(f"{api}/pipelines/order-pipeline/subtasks?window=1h").json()
    assert got is not None
    assert (got["window_length_ms"], got["step_ms"]) == (WINDOW_MS, WINDOW_MS)
    assert [(m["window_start"], m["window_end"]) for m in got["missing"]] == [
        (s, s + WINDOW_MS) for s in sorted(gap, reverse=True)
    ]
    panes = {(o.merchant, o.ts // WINDOW_MS * WINDOW_MS) for o in data}
    assert got["windows"] == len(fired) and got["fires"] == len(panes)
    assert got["late_rate"] is None
    # the two subtasks between them fired every pane once, and neither fell behind
    [agg] = parallel["operators"]
    assert [s["subtask_index"] for s in agg["detail"]] == [0, 1]
    assert sum(s["flushes"] for s in agg["detail"]) == len(panes)
    assert sum(s["input_count"] for s in agg["detail"]) == len(data)
    assert agg["stalled"] == []


def test_a_flink_jobs_funnel_follows_its_records_through_three_operators(
    flink_env, tmp_path: Path
) -> None:
    """filter → keyed process (with a side output) → map, posting to a real `faro
    serve`: each stage's counts, and every hand-off whole."""
    data = orders(400)
    not_c = [o for o in data if o.category != "C"]
    big = [o for o in not_c if o.amount > 50]
    with running_api(tmp_path) as api:
        faro = FaroFlink(
            "funnel-pipeline", HttpCaptureEventSink.factory(f"{api}/ingest"), flush_interval=3600
        )
        processed = (
            order_stream(flink_env(2), data)
            .filter(faro.filter_trace(lambda o: o[1] != "C", operator_id="drop-category-c"))
            .key_by(lambda o: o[0], key_type=Types.STRING())
            .process(faro.process_trace(BigOrders(), operator_id="big-orders"), ORDER_TYPE)
        )
        processed.get_side_output(SMALL)
        amounts = processed.map(
            faro.map_trace(lambda o: (o[0], o[2]), operator_id="amount"),
            Types.TUPLE([Types.STRING(), Types.DOUBLE()]),
        )
        assert len(collect(amounts)) == len(big)

        def stages() -> list[dict] | None:
            body = httpx.get(f"{api}/pipelines/funnel-pipeline/funnel?window=1h")
            got = body.json()["stages"] if body.status_code == 200 else []
            done = len(got) == 3 and got[-1]["output_count"] == len(big)
            return got if done else None

        assert wait_for(lambda: stages() is not None, CLOSE_GRACE_S), "not every flush arrived"
        got = stages()
    assert got is not None
    # all three are per-record operators, so the biggest input leads
    assert [(s["operator_id"], s["input_count"], s["output_count"]) for s in got] == [
        ("drop-category-c", len(data), len(not_c)),
        ("big-orders", len(not_c), len(big)),
        ("amount", len(big), len(big)),
    ]
    assert [s["handoff_rate"] for s in got] == [None, 1.0, 1.0]
    assert got[-1]["survival"] == pytest.approx(len(big) / len(data))
