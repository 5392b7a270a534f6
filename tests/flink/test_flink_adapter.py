import dataclasses
import itertools
import json
import math
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pyflink.common import Configuration, Types
from pyflink.common.time import Time
from pyflink.datastream import OutputTag
from pyflink.datastream.window import EventTimeSessionWindows, TumblingEventTimeWindows

from faro import (
    DataClassification,
    EventType,
    FaroConfig,
    FaroFeatureConfig,
    HttpCaptureEventSink,
    OperatorType,
)
from faro._dev.broker import free_port
from faro.core.sampling import is_sampled, trace_id
from faro.flink import FaroFlink
from tests.flink.conftest import CLOSE_GRACE_S, received_events, wait_received
from tests.flink.jobs import (
    ORDER_TYPE,
    SMALL,
    SUMMARY_TYPE,
    WINDOW_MS,
    AllOrders,
    BigOrders,
    KeyedOrdersAndRefunds,
    KeyedOrdersByRules,
    MerchantTotals,
    MerchantTotalsApplied,
    MerchantWindowTotals,
    Order,
    OrderAggFn,
    OrdersAndRefunds,
    OrdersByRules,
    OrdersOrRefunds,
    PassThrough,
    RevenueAgg,
    SplitLarge,
    Unkeyed,
    WindowTotals,
    collect,
    minimums,
    order_stream,
    order_type,
    orders,
    panes_of,
    revenue_type,
    timestamped,
    totals_type,
    window_job,
    window_totals_type,
    windowed,
    windows_of,
)
from tests.support import wait_for

pytestmark = pytest.mark.flink


def _faro(receiver, **kwargs) -> FaroFlink:
    return FaroFlink(
        "order-pipeline", HttpCaptureEventSink.factory(receiver.url, format="json"), **kwargs
    )


def _fires(events: list) -> Counter:
    """Each window fire's bounds, records in and out, and event-time range."""
    return Counter(
        (e.window_start, e.window_end, e.input_count, e.output_count, e.event_time_min,
         e.event_time_max)
        for e in events
    )  # fmt: skip


def _single_result_fires(panes: dict[Any, list[Order]]) -> Counter:
    """The fires of windows that emit one result per pane, from :func:`panes_of` (keyed
    by merchant and window start) or :func:`windows_of` (by window start)."""
    starts = ((key[1] if isinstance(key, tuple) else key, pane) for key, pane in panes.items())
    return Counter(
        (start, start + WINDOW_MS, len(pane), 1, min(o.ts for o in pane), max(o.ts for o in pane))
        for start, pane in starts
    )


@pytest.mark.parametrize("parallelism", [1, 2])
def test_window_trace_counts_every_pane_and_changes_nothing(
    flink_env, receiver, parallelism
) -> None:
    data = orders(600)
    faro = _faro(receiver)
    config = FaroConfig(features=["order_count", "revenue"])
    traced = faro.window_trace(OrderAggFn(), config, "order-agg-window", event_time=lambda o: o[3])
    output = collect(window_job(flink_env(parallelism), data, traced))

    panes = panes_of(data)
    expected_output = sorted(
        (
            m,
            c,
            sum(1 for o in pane if o.category == c),
            round(sum(o.amount for o in pane if o.category == c), 6),
        )
        for (m, _), pane in panes.items()
        for c in sorted({o.category for o in pane})
    )
    assert sorted(output) == expected_output

    expected_events = Counter(
        (start, start + WINDOW_MS, len(pane), len({o.category for o in pane}),
         min(o.ts for o in pane), max(o.ts for o in pane))
        for (_, start), pane in panes.items()
    )  # fmt: skip
    events = wait_received(receiver, len(panes))
    assert _fires(events) == expected_events
    assert all(
        e.event_type is EventType.AGGREGATE and e.operator_type is OperatorType.WINDOW
        for e in events
    )
    assert all(e.late_count is None and e.operator_id == "order-agg-window" for e in events)
    assert {e.subtask_index for e in events} == set(range(parallelism))
    stats = [{s.name: s for s in e.feature_stats} for e in events]
    assert sum(s["order_count"].sum for s in stats) == len(data)
    assert sum(s["revenue"].sum for s in stats) == pytest.approx(sum(o.amount for o in data))


def test_unwrapped_job_gives_the_same_output(flink_env, receiver) -> None:
    data = orders(300)
    plain = collect(window_job(flink_env(2), data, OrderAggFn()))
    traced = collect(
        window_job(
            flink_env(2), data, _faro(receiver).window_trace(OrderAggFn(), FaroConfig(), "w")
        )
    )
    assert sorted(plain) == sorted(traced)


def _folded(stream, window, aggregate_args, output_type):
    """Orders keyed by merchant in ``window``, aggregated incrementally."""
    keyed = stream.key_by(lambda o: o[0], key_type=Types.STRING())
    return keyed.window(window).aggregate(*aggregate_args, output_type=output_type)


@pytest.mark.parametrize(
    ("parallelism", "window_function", "accumulator_type", "output_type", "shape", "count"),
    [
        # no window function: the AggregateFunction's result is the output; its
        # accumulator pickled
        (1, None, lambda: None, revenue_type,
         lambda m, start, pane: (round(sum(o.amount for o in pane), 6), len(pane)),
         lambda r: r[1]),
        # a ProcessWindowFunction on the result; the accumulator's type given
        (2, MerchantTotals(), revenue_type, totals_type,
         lambda m, start, pane: (m, start, len(pane), round(sum(o.amount for o in pane), 6)),
         "order_count"),
    ],
    ids=["result-alone", "process-window-function"],
)  # fmt: skip
def test_aggregate_trace_counts_every_folded_pane_and_changes_nothing(
    flink_env, receiver, parallelism, window_function, accumulator_type, output_type, shape, count
) -> None:
    data = orders(600)
    window = TumblingEventTimeWindows.of(Time.milliseconds(WINDOW_MS))
    plain_args = (RevenueAgg(), window_function, accumulator_type())
    plain = collect(_folded(order_stream(flink_env(parallelism), data), window, plain_args,
                            output_type()))  # fmt: skip
    config = FaroConfig(features={"orders": FaroFeatureConfig(feature_value=count, on="output")})
    agg = _faro(receiver).aggregate_trace(
        RevenueAgg(), config, "revenue-window", window_function=window_function,
        accumulator_type=accumulator_type(), event_time=lambda o: o[3],
    )  # fmt: skip
    traced = collect(
        _folded(order_stream(flink_env(parallelism), data), window, agg, output_type())
    )

    panes = panes_of(data)
    assert sorted(traced) == sorted(plain) == sorted(
        shape(m, start, pane) for (m, start), pane in panes.items()
    )
    events = wait_received(receiver, len(panes))
    assert _fires(events) == _single_result_fires(panes)
    assert all(
        (e.operator_id, e.operator_type, e.late_count) == ("revenue-window", "WINDOW", None)
        for e in events
    )
    assert {e.subtask_index for e in events} == set(range(parallelism))
    # the feature read from each fire's result sums to every order
    assert sum(s.sum for e in events for s in e.feature_stats) == len(data)


def test_window_trace_takes_a_window_function_for_apply_or_process(flink_env, receiver) -> None:
    """The traced WindowFunction works with ``.apply()`` and, in its place,
    ``.process()``, which computes the same."""
    data = orders(600)
    window = TumblingEventTimeWindows.of(Time.milliseconds(WINDOW_MS))
    faro = _faro(receiver)

    def keyed(env):
        return order_stream(env, data).key_by(lambda o: o[0], key_type=Types.STRING())

    def traced(operator_id: str):
        return faro.window_trace(MerchantWindowTotals(), None, operator_id,
                                 event_time=lambda o: o[3])  # fmt: skip

    plain = collect(keyed(flink_env(2)).window(window).apply(MerchantWindowTotals(),
                                                             totals_type()))  # fmt: skip
    applied = collect(keyed(flink_env(2)).window(window).apply(traced("applied"), totals_type()))
    processed = collect(
        keyed(flink_env(2)).window(window).process(traced("processed"), totals_type())
    )
    whole = faro.window_trace(WindowTotals(), None, "all-applied", event_time=lambda o: o[3])
    everything = collect(
        order_stream(flink_env(2), data).window_all(window).apply(whole, window_totals_type())
    )

    panes = panes_of(data)
    assert sorted(applied) == sorted(processed) == sorted(plain) == sorted(
        (m, start, len(pane), round(sum(o.amount for o in pane), 6))
        for (m, start), pane in panes.items()
    )  # fmt: skip
    by_window = windows_of(data)
    assert sorted(everything) == sorted(
        (start, len(pane), round(sum(o.amount for o in pane), 6))
        for start, pane in by_window.items()
    )
    events = wait_received(receiver, 2 * len(panes) + len(by_window))
    keyed_fires = _single_result_fires(panes)
    for operator in ("applied", "processed"):
        assert _fires([e for e in events if e.operator_id == operator]) == keyed_fires, operator
    whole_fires = _fires([e for e in events if e.operator_id == "all-applied"])
    assert whole_fires == _single_result_fires(by_window)
    # .apply() hands the trace no watermark (.process() does: tests/flink/test_functions.py)
    assert all(e.watermark is None for e in events if e.operator_id != "processed")


def _merged(a: tuple, b: tuple) -> tuple:
    """Two orders of one merchant as one: the same whatever order Flink reduces in."""
    return (a[0], min(a[1], b[1]), a[2] + b[2], max(a[3], b[3]), min(a[4], b[4]))


def test_reduce_trace_counts_every_reduced_pane_and_changes_nothing(flink_env, receiver) -> None:
    data = orders(600)
    window = TumblingEventTimeWindows.of(Time.milliseconds(WINDOW_MS))

    def keyed(env):
        return order_stream(env, data).key_by(lambda o: o[0], key_type=Types.STRING())

    plain = collect(keyed(flink_env(2)).window(window).reduce(_merged, output_type=ORDER_TYPE))
    amount = FaroFeatureConfig(feature_value=lambda o: o[2], on="output")
    config = FaroConfig(features={"amount": amount})
    reduced = _faro(receiver).reduce_trace(
        _merged, config, "merged-window", value_type=order_type(), event_time=lambda o: o[3]
    )
    traced = collect(keyed(flink_env(2)).window(window).aggregate(*reduced, output_type=ORDER_TYPE))

    panes = panes_of(data)
    assert sorted(traced) == sorted(plain) == sorted(
        (m, min(o.category for o in pane), round(sum(o.amount for o in pane), 6),
         max(o.ts for o in pane), min(o.user for o in pane))
        for (m, _), pane in panes.items()
    )  # fmt: skip
    events = wait_received(receiver, len(panes))
    assert _fires(events) == _single_result_fires(panes)
    assert {(e.operator_id, e.operator_type) for e in events} == {("merged-window", "WINDOW")}
    [total] = {round(sum(s.sum for e in events for s in e.feature_stats), 6)}
    assert total == round(sum(o.amount for o in data), 6)


def test_window_all_is_traced_by_window_trace_and_aggregate_trace(flink_env, receiver) -> None:
    data = orders(600)
    faro = _faro(receiver)
    window = TumblingEventTimeWindows.of(Time.milliseconds(WINDOW_MS))
    whole = faro.window_trace(AllOrders(), FaroConfig(features=["order_count"]), "all-window",
                              event_time=lambda o: o[3])  # fmt: skip
    listed = collect(
        order_stream(flink_env(2), data).window_all(window).process(whole, window_totals_type())
    )
    agg = faro.aggregate_trace(
        RevenueAgg(), None, "all-aggregate", accumulator_type=revenue_type(),
        event_time=lambda o: o[3],
    )  # fmt: skip
    folded = collect(
        order_stream(flink_env(2), data).window_all(window).aggregate(
            *agg, output_type=revenue_type()
        )
    )

    panes = windows_of(data)
    revenue = {start: round(sum(o.amount for o in pane), 6) for start, pane in panes.items()}
    assert sorted(listed) == sorted((s, len(p), revenue[s]) for s, p in panes.items())
    assert sorted(folded) == sorted((revenue[s], len(p)) for s, p in panes.items())
    events = wait_received(receiver, 2 * len(panes))
    expected = _single_result_fires(panes)
    for operator in ("all-window", "all-aggregate"):
        assert _fires([e for e in events if e.operator_id == operator]) == expected, operator
    listed_stats = [s for e in events if e.operator_id == "all-window" for s in e.feature_stats]
    assert sum(s.sum for s in listed_stats) == len(data)


SESSION_GAP_MS = 1_000


def _sessions(data: list[Order]) -> list[tuple[str, list[Order]]]:
    """Each merchant's orders split where two are more than the gap apart: Flink
    merges the session windows [ts, ts + gap) of two orders when they touch."""
    sessions: list[tuple[str, list[Order]]] = []
    for m in sorted({o.merchant for o in data}):
        mine = [o for o in data if o.merchant == m]  # in event-time order
        current = [mine[0]]
        for prev, o in itertools.pairwise(mine):
            if o.ts - prev.ts > SESSION_GAP_MS:
                sessions.append((m, current))
                current = []
            current.append(o)
        sessions.append((m, current))
    return sessions


def test_aggregate_trace_follows_merging_session_windows(flink_env, receiver) -> None:
    """Each session's pane, grown order by order, and a WindowFunction reading the
    result. In event-time order at parallelism 1, where a session ends does not
    depend on when a periodic watermark comes. (Sessions that an order bridges
    after both formed lose one accumulator in PyFlink's process mode, traced or
    not: docs/flink.md, Pitfalls.)"""
    data = orders(600)
    window = EventTimeSessionWindows.with_gap(Time.milliseconds(SESSION_GAP_MS))
    agg = _faro(receiver).aggregate_trace(
        RevenueAgg(), FaroConfig(features=["order_count"]), "revenue-session",
        window_function=MerchantTotalsApplied(), accumulator_type=revenue_type(),
        event_time=lambda o: o[3],
    )  # fmt: skip
    output = collect(_folded(order_stream(flink_env(1), data), window, agg, totals_type()))

    sessions = _sessions(data)
    assert sorted(output) == sorted(
        (m, s[0].ts, len(s), round(sum(o.amount for o in s), 6)) for m, s in sessions
    )
    events = wait_received(receiver, len(sessions))
    assert _fires(events) == Counter(
        (s[0].ts, s[-1].ts + SESSION_GAP_MS, len(s), 1, s[0].ts, s[-1].ts) for _, s in sessions
    )  # fmt: skip
    assert sum(st.sum for e in events for st in e.feature_stats) == len(data)


@pytest.mark.parametrize("parallelism", [1, 2])
def test_process_filter_and_map_traces_count_ground_truth(flink_env, receiver, parallelism) -> None:
    data = orders(500)
    faro = _faro(receiver, flush_interval=3600)
    processed = (
        order_stream(flink_env(parallelism), data)
        .filter(faro.filter_trace(lambda o: o[1] != "C", operator_id="drop-category-c"))
        .key_by(lambda o: o[0], key_type=Types.STRING())
        .process(faro.process_trace(BigOrders(), operator_id="big-orders"), ORDER_TYPE)
    )
    processed.get_side_output(SMALL)  # registered, so PyFlink routes (tag, value) pairs there
    stream = processed.map(
        faro.map_trace(lambda o: (o[0], o[2] * 2), operator_id="double"),
        Types.TUPLE([Types.STRING(), Types.DOUBLE()]),
    )
    output = collect(stream)

    not_c = [o for o in data if o.category != "C"]
    big = [o for o in not_c if o.amount > 50]
    assert sorted(output) == sorted((o.merchant, o.amount * 2) for o in big)

    expected = {
        "drop-category-c": (len(data), len(not_c)),
        "big-orders": (len(not_c), len(big)),  # side-output records are not outputs
        "double": (len(big), len(big)),
    }
    assert wait_for(lambda: _totals(receiver) == expected, CLOSE_GRACE_S), _totals(receiver)
    events = received_events(receiver)
    process_events = [e for e in events if e.operator_id == "big-orders"]
    assert min(e.event_time_min for e in process_events) == min(o.ts for o in not_c)
    assert max(e.event_time_max for e in process_events) == max(o.ts for o in not_c)
    assert all(e.late_count is not None for e in process_events)
    assert all(e.late_count is None for e in events if e.operator_id != "big-orders")


@pytest.mark.parametrize("keyed", [False, True])
def test_co_process_trace_counts_both_inputs(flink_env, receiver, keyed) -> None:
    """Orders (through a ProcessFunction on a stream not keyed) connected with refunds:
    both inputs count as the join's inputs, what it emits as outputs (side outputs
    not), and its output feature gives one ENTITY event per output record."""
    data, refunds = orders(400, seed=3), orders(120, seed=4)
    faro = _faro(receiver, flush_interval=3600)
    amount = FaroFeatureConfig(entity_key=lambda o: o[4], feature_value=lambda o: o[2],
                               on="output")  # fmt: skip
    env = flink_env(2)
    tagged = order_stream(env, data).process(faro.process_trace(Unkeyed()), ORDER_TYPE)
    other = order_stream(env, refunds)
    if keyed:
        connected = tagged.key_by(lambda o: o[0], key_type=Types.STRING()).connect(
            other.key_by(lambda o: o[0], key_type=Types.STRING())
        )
        fn = KeyedOrdersAndRefunds()
    else:
        connected, fn = tagged.connect(other), OrdersAndRefunds()
    joined = connected.process(
        faro.co_process_trace(fn, FaroConfig(features={"amount": amount}), "refunds-join"),
        ORDER_TYPE,
    )
    joined.get_side_output(SMALL)  # registered, so PyFlink routes (tag, value) pairs there
    output = collect(joined)

    big = [o for o in data if o.amount > 50]
    expected = [o.as_tuple() for o in big] + [
        (o.merchant, o.category, -o.amount, o.ts, o.user) for o in refunds
    ]
    assert sorted(output) == sorted(expected)

    assert wait_for(
        lambda: _totals(receiver).get("refunds-join") == (len(data) + len(refunds), len(expected)),
        CLOSE_GRACE_S,
    ), _totals(receiver)
    assert _totals(receiver)["Unkeyed"] == (len(data), len(data))  # the class name as id
    joins = [e for e in received_events(receiver) if e.operator_id == "refunds-join"]
    joins = [e for e in joins if e.event_type == EventType.AGGREGATE]
    assert {(e.operator_type, tuple(e.features)) for e in joins} == {
        (OperatorType.JOIN, ("amount",))
    }
    assert min(e.event_time_min for e in joins) == min(o.ts for o in data + refunds)
    assert max(e.event_time_max for e in joins) == max(o.ts for o in data + refunds)
    assert all(e.late_count is not None for e in joins)
    stats = [s for e in joins for s in e.feature_stats]
    assert sum(s.count for s in stats) == len(expected)
    assert sum(s.sum for s in stats) == pytest.approx(sum(o[2] for o in expected))
    _entities_are(receiver, [(o[4], o[2], o[3]) for o in expected])


@pytest.mark.parametrize("keyed", [False, True])
def test_broadcast_process_trace_counts_the_main_stream(flink_env, receiver, keyed) -> None:
    """Orders connected with rules broadcast to both parallel instances: only the
    orders count as inputs (and give the input feature's ENTITY events), while what
    the function emits for each rule (once per instance) and from timers counts as
    output."""
    data, rules = orders(400, seed=3), orders(30, seed=6)
    faro = _faro(receiver, flush_interval=3600)
    amount = FaroFeatureConfig(entity_key=lambda o: o[4], feature_value=lambda o: o[2])
    env = flink_env(2)
    main = order_stream(env, data)
    broadcast = order_stream(env, rules).broadcast(minimums())
    if keyed:
        main, fn = main.key_by(lambda o: o[0], key_type=Types.STRING()), KeyedOrdersByRules()
    else:
        fn = OrdersByRules()
    ruled = main.connect(broadcast).process(
        faro.broadcast_process_trace(fn, FaroConfig(features={"amount": amount}), "rules"),
        ORDER_TYPE,
    )
    ruled.get_side_output(SMALL)  # registered, so PyFlink routes (tag, value) pairs there
    output = collect(ruled)

    expected = [o.as_tuple() for o in data if o.amount > 50]
    expected += 2 * [(o.merchant, "rule", o.amount, o.ts, "rules") for o in rules]
    if keyed:
        timers = {(o.merchant, o.ts) for o in data if o.amount < 10}
        expected += [(m, "timer", 0.0, ts, "timers") for m, ts in timers]
    assert sorted(output) == sorted(expected)

    assert wait_for(
        lambda: _totals(receiver).get("rules") == (len(data), len(expected)), CLOSE_GRACE_S
    ), _totals(receiver)
    events = received_events(receiver)
    aggregates = [e for e in events if e.event_type == EventType.AGGREGATE]
    assert {e.operator_type for e in aggregates} == {OperatorType.PROCESS}
    assert min(e.event_time_min for e in aggregates) == min(o.ts for o in data)
    assert max(e.event_time_max for e in aggregates) == max(o.ts for o in data)
    assert all(e.late_count is not None for e in aggregates)
    stats = [s for e in aggregates for s in e.feature_stats]
    assert sum(s.count for s in stats) == len(data)
    assert sum(s.sum for s in stats) == pytest.approx(sum(o.amount for o in data))
    _entities_are(receiver, [(o.user, o.amount, o.ts) for o in data])


def test_co_map_and_co_flat_map_traces_count_both_inputs(flink_env, receiver) -> None:
    data, refunds, extra = orders(300, seed=3), orders(80, seed=4), orders(50, seed=5)
    faro = _faro(receiver, flush_interval=3600)
    env = flink_env(2)
    pair = Types.TUPLE([Types.STRING(), Types.DOUBLE()])
    signed = (
        order_stream(env, data).connect(order_stream(env, refunds))
        .map(faro.co_map_trace(OrdersOrRefunds(), operator_id="signed"), pair)
    )  # fmt: skip
    split = signed.connect(order_stream(env, extra)).flat_map(
        faro.co_flat_map_trace(SplitLarge(), operator_id="split"), pair
    )
    output = collect(split)

    kept = [(o.merchant, o.amount) for o in data if o.amount >= 10]
    kept += [(o.merchant, -o.amount) for o in refunds]
    large = [(m, a / 2) for m, a in kept if abs(a) > 50]
    expected = large + large + [(o.merchant, o.amount) for o in extra]
    assert sorted(output) == sorted((m, round(a, 6)) for m, a in expected)

    assert wait_for(
        lambda: _totals(receiver) == {
            "signed": (len(data) + len(refunds), len(kept)),  # a None result is no output
            "split": (len(kept) + len(extra), len(expected)),
        },
        CLOSE_GRACE_S,
    ), _totals(receiver)
    types = {(e.operator_id, e.operator_type, e.late_count) for e in received_events(receiver)}
    assert types == {("signed", OperatorType.MAP, None), ("split", OperatorType.FLAT_MAP, None)}


def _entities_are(receiver, expected: list[tuple[str, float, int]]) -> None:
    """Waits for one ENTITY event per (entity, value, event time) in ``expected``, then
    checks that they are exactly those."""

    def entities() -> list:
        return [e for e in received_events(receiver) if e.event_type == EventType.ENTITY]

    assert wait_for(lambda: len(entities()) == len(expected), CLOSE_GRACE_S), len(entities())
    assert sorted((e.entity_id, e.feature_value, e.event_time) for e in entities()) == sorted(
        expected
    )


def _totals(receiver) -> dict[str, tuple[int, int]]:
    """Per operator, the inputs and outputs its AGGREGATE events counted."""
    sums: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for e in received_events(receiver):
        if e.event_type == EventType.AGGREGATE:
            sums[e.operator_id][0] += e.input_count
            sums[e.operator_id][1] += e.output_count
    return {k: (v[0], v[1]) for k, v in sums.items()}


def _hold_first_straggler(o: tuple) -> tuple:
    """Sleeps once, before the first straggler: periodic watermarks pass meanwhile, so
    every straggler reaches the window behind the watermark."""
    if o[4] == "straggler-0":
        time.sleep(1.0)
    return o


def test_late_trace_counts_the_late_records_a_window_sends_aside(
    flink_env, receiver, tmp_path
) -> None:
    data = orders(1500)
    stragglers = [  # the first window's event times, after everything else
        dataclasses.replace(o, ts=data[0].ts + i, user=f"straggler-{i}")
        for i, o in enumerate(data[:200])
    ]
    env = flink_env(1)
    # records leave the Python worker one by one, so those before the pause reach the
    # watermark's timer while it lasts
    bundles = Configuration()
    bundles.set_string("python.fn-execution.bundle.size", "1")
    bundles.set_string("python.fn-execution.bundle.time", "1")
    env.configure(bundles)
    faro = _faro(receiver, flush_interval=3600)
    agg = faro.window_trace(
        OrderAggFn(), FaroConfig(features=["order_count"]), "order-agg-window",
        event_time=lambda o: o[3],
    )  # fmt: skip
    # a type of its own: PyFlink 2.x cannot pickle a window's late-data tag whose type
    # information the job already used (its nested types then hold Java objects)
    late = OutputTag("late", Types.TUPLE(
        [Types.STRING(), Types.STRING(), Types.DOUBLE(), Types.LONG(), Types.STRING()]
    ))  # fmt: skip
    source = env.from_collection([o.as_tuple() for o in data + stragglers], type_info=ORDER_TYPE)
    stream = timestamped(source.map(_hold_first_straggler, ORDER_TYPE))
    sums = (
        stream.key_by(lambda o: o[0], key_type=Types.STRING())
        .window(TumblingEventTimeWindows.of(Time.milliseconds(WINDOW_MS)))
        .side_output_late_data(late)
        .process(agg, SUMMARY_TYPE)
    )
    results, aside = tmp_path / "results", tmp_path / "late"
    sums.map(_write_to(results), SUMMARY_TYPE)
    sums.get_side_output(late).map(faro.late_trace(agg, _write_to(aside)), ORDER_TYPE)
    env.execute("late records")  # execute_and_collect would leave the side branch out

    on_time = sum(row[2] for row in _written(results))  # the results' order counts
    set_aside = _written(aside)
    assert len(set_aside) == len(data) + len(stragglers) - on_time > 0
    assert wait_for(
        lambda: sum(e.late_count or 0 for e in received_events(receiver)) == len(set_aside),
        CLOSE_GRACE_S,
    )
    events = received_events(receiver)
    fires = [e for e in events if e.window_start is not None]
    counted = [e for e in events if e.window_start is None]
    assert sum(e.input_count for e in fires) == on_time
    assert all(e.late_count is None for e in fires)
    assert sum(e.input_count for e in counted) == sum(e.late_count for e in counted)
    assert all(
        (e.operator_id, e.operator_type, e.output_count, e.window_end, e.features)
        == ("order-agg-window", OperatorType.WINDOW, 0, None, ["order_count"])
        for e in counted
    )
    assert min(e.event_time_min for e in counted) == min(r[3] for r in set_aside)
    assert max(e.event_time_max for e in counted) == max(r[3] for r in set_aside)


def _write_to(path: Path) -> Callable[[Any], Any]:
    def write(record: Any) -> Any:
        with open(path, "a") as f:
            f.write(json.dumps(list(record)) + "\n")
        return record

    return write


def _written(path: Path) -> list[list[Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _purchase_config(rate: float, classification=DataClassification.NON_PERSONAL) -> FaroConfig:
    spec = FaroFeatureConfig(
        entity_key=lambda o: o[4],
        feature_value=lambda o: o[2],
        sample_rate=rate,
        classification=classification,
    )
    return FaroConfig(features={"purchase_amount": spec})


def test_entity_events_at_rate_one_are_one_per_input_record(flink_env, receiver) -> None:
    data = orders(400)
    traced = _faro(receiver).window_trace(
        OrderAggFn(), _purchase_config(1.0), "rolling-amount-window", event_time=lambda o: o[3]
    )
    collect(window_job(flink_env(2), data, traced))
    panes = panes_of(data)
    events = wait_received(receiver, len(data) + len(panes))
    entities = [e for e in events if e.event_type is EventType.ENTITY]
    assert Counter((e.entity_id, e.feature_value) for e in entities) == Counter(
        (o.user, o.amount) for o in data
    )
    assert all(e.feature_name == "purchase_amount" and e.sample_rate == 1.0 for e in entities)
    assert Counter(e.event_time for e in entities) == Counter(o.ts for o in data)


def test_entity_sampling_at_a_tenth_keeps_exactly_the_hashed_entities(flink_env, receiver) -> None:
    data = orders(3000, users=3000)
    traced = _faro(receiver).window_trace(OrderAggFn(), _purchase_config(0.1), "w")
    collect(window_job(flink_env(2), data, traced))
    expected = [o for o in data if is_sampled(o.user, 0.1)]
    n = len(data)
    assert abs(len(expected) - 0.1 * n) < 5 * math.sqrt(
        n * 0.1 * 0.9
    )  # the hash behaves like a coin
    panes = panes_of(data)
    events = wait_received(receiver, len(expected) + len(panes))
    entities = [e for e in events if e.event_type is EventType.ENTITY]
    assert Counter(e.entity_id for e in entities) == Counter(o.user for o in expected)


def test_personal_features_produce_no_entity_events(flink_env, receiver) -> None:
    data = orders(300)
    config = _purchase_config(1.0, DataClassification.PERSONAL)
    collect(window_job(flink_env(1), data, _faro(receiver).window_trace(OrderAggFn(), config, "w")))
    panes = panes_of(data)
    events = wait_received(receiver, len(panes))
    assert len(events) == len(panes)
    assert all(e.event_type is EventType.AGGREGATE for e in events)
    assert sum(e.feature_stats[0].count for e in events) == len(data)


class _ExplodingSink:
    def emit(self, event) -> None:
        raise RuntimeError("destination exploded")

    def flush(self, timeout=None) -> bool:
        raise RuntimeError("destination exploded")

    def close(self) -> None:
        raise RuntimeError("destination exploded")


def _factory_that_fails() -> _ExplodingSink:
    raise ConnectionError("cannot reach the destination")


def test_broken_sinks_never_change_or_fail_the_job(flink_env, receiver) -> None:
    data = orders(300)
    plain = collect(window_job(flink_env(2), data, OrderAggFn()))
    down = FaroFlink(
        "p", HttpCaptureEventSink.factory(f"http://127.0.0.1:{free_port()}", max_retries=0)
    )
    exploding = FaroFlink("p", _ExplodingSink, flush_interval=0.001)
    unbuildable = FaroFlink("p", _factory_that_fails)
    env = flink_env(2)
    stream = (
        order_stream(env, data)
        .map(exploding.map_trace(lambda o: o, _purchase_config(1.0), operator_id="id"), ORDER_TYPE)
        .filter(unbuildable.filter_trace(lambda o: True, operator_id="all"))
    )
    traced = windowed(stream, down.window_trace(OrderAggFn(), _purchase_config(1.0), "w"))
    assert sorted(collect(traced)) == sorted(plain)


class _FailsOnlyAtTheEnd:
    """Takes every event, then cannot deliver them: what a destination that is down
    looks like to a sink that batches."""

    def emit(self, event) -> None:
        pass

    def flush(self, timeout=None) -> bool:
        raise ConnectionError("the destination went away before the last flush")

    def close(self) -> None:
        pass


def test_a_sink_failing_at_close_is_reported_on_stderr(flink_env, capfd) -> None:
    """PyFlink's worker no longer forwards log records when functions close, so
    failures there go to the worker's stderr (here: this process's)."""
    faro = FaroFlink("p", _FailsOnlyAtTheEnd, flush_interval=3600)
    env = flink_env(1)
    stream = order_stream(env, orders(50)).map(
        faro.map_trace(lambda o: o, operator_id="last-flush"), ORDER_TYPE
    )
    assert len(collect(stream)) == 50
    err = capfd.readouterr().err
    assert "faro operator 'last-flush': closing the sink failed" in err
    assert "the destination went away before the last flush" in err


def test_a_window_result_and_the_operator_after_it_report_one_trace(flink_env, receiver) -> None:
    """Window results carry the window's last millisecond as event time, as Flink
    stamps them, so the next operator's ENTITY events of the same row share its
    trace id: one id per merchant and window, not one per merchant."""
    data = orders(400)
    faro = _faro(receiver, flush_interval=3600)

    def revenue(side: str) -> FaroConfig:
        spec = FaroFeatureConfig(entity_key="merchant", feature_value="revenue", on=side)
        return FaroConfig(features={"revenue": spec})

    results = windowed(
        order_stream(flink_env(2), data),
        faro.window_trace(OrderAggFn(), revenue("output"), "order-agg-window"),
    )
    after = results.key_by(lambda r: r[0], key_type=Types.STRING()).process(
        faro.process_trace(PassThrough(), revenue("input"), "after-window"), SUMMARY_TYPE
    )
    collect(after)

    expected: Counter[tuple[str, int, float]] = Counter()
    for (merchant, start), pane in panes_of(data).items():
        for category in {o.category for o in pane}:
            revenue_sum = sum(o.amount for o in pane if o.category == category)
            expected[(merchant, start + WINDOW_MS - 1, round(revenue_sum, 6))] += 1

    def entities(operator: str) -> list:
        return [
            e for e in received_events(receiver)
            if e.event_type is EventType.ENTITY and e.operator_id == operator
        ]  # fmt: skip

    n = sum(expected.values())
    assert wait_for(
        lambda: len(entities("order-agg-window")) == len(entities("after-window")) == n,
        CLOSE_GRACE_S,
    ), (len(entities("order-agg-window")), len(entities("after-window")), n)
    for operator in ("order-agg-window", "after-window"):
        seen = entities(operator)
        assert (
            Counter((e.entity_id, e.event_time, round(e.feature_value, 6)) for e in seen)
            == expected
        )
        assert all(
            e.trace_id == trace_id("order-pipeline", e.entity_id, e.event_time) for e in seen
        )
    ids = {e.trace_id for e in entities("order-agg-window")}
    assert ids == {e.trace_id for e in entities("after-window")}
    assert len(ids) == len({(m, t) for m, t, _ in expected})  # one per merchant and window
