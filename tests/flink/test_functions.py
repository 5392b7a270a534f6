"""The wrappers' pass-through paths that a bounded mini-cluster job cannot reach.

PyFlink (2.3, process mode) fires no event-time timers of a KeyedProcessFunction
at the end of bounded input, wrapped or not, so ``on_timer`` is driven directly
here, on the real wrapper, with a minimal context object.
"""

import random

import pytest
from pyflink.datastream import OutputTag
from pyflink.datastream.time_domain import TimeDomain
from pyflink.datastream.window import TimeWindow
from pyflink.fn_execution.datastream.process.process_function import (
    InternalBroadcastProcessFunctionContext,
    InternalBroadcastProcessFunctionReadOnlyContext,
    InternalKeyedProcessFunctionContext,
    InternalProcessFunctionContext,
)
from pyflink.fn_execution.datastream.process.timerservice_impl import (
    InternalTimerServiceImpl,
    NonKeyedTimerServiceImpl,
    TimerServiceImpl,
)

from faro import EventType, FaroConfig, FaroFeatureConfig, OperatorType
from faro.flink import FaroFlink
from faro.flink.functions import _PublicReads, _reads
from tests.flink.jobs import (
    ORDER_TYPE,
    SMALL,
    BigOrders,
    KeyedOrdersAndRefunds,
    MerchantWindowTotals,
    OrderAggFn,
    OrdersAndRefunds,
    OrdersByRules,
    OrdersOrRefunds,
    PassThrough,
    RevenueAgg,
    SplitLarge,
)
from tests.support import ListSink

LATE = OutputTag("late", ORDER_TYPE)


class _Ctx:
    def __init__(self, key: str, domain: TimeDomain = TimeDomain.EVENT_TIME):
        self._key = key
        self._domain = domain

    def get_current_key(self) -> str:
        return self._key

    def time_domain(self) -> TimeDomain:
        return self._domain


class _RuntimeContext:
    def get_index_of_this_subtask(self) -> int:
        return 1


class Timed(BigOrders):
    def on_timer(self, timestamp, ctx):
        yield (ctx.get_current_key(), "T", 0.0, timestamp, "timer")
        yield LATE, ("late", "T", 0.0, timestamp, "side")


def test_records_from_on_timer_pass_through_and_count_as_outputs() -> None:
    sink = ListSink()
    traced = FaroFlink("p", lambda: sink).process_trace(Timed(), FaroConfig(), "timed")
    traced.open(_RuntimeContext())
    out = list(traced.on_timer(42, _Ctx("m1")))
    traced.close()
    assert out == [("m1", "T", 0.0, 42, "timer"), (LATE, ("late", "T", 0.0, 42, "side"))]
    [event] = sink.of_type(EventType.AGGREGATE)
    assert (event.input_count, event.output_count, event.subtask_index) == (0, 1, 1)
    assert sink.closed


@pytest.mark.parametrize(
    ("domain", "event_time"), [(TimeDomain.EVENT_TIME, 42), (TimeDomain.PROCESSING_TIME, None)]
)
def test_what_a_timer_emits_carries_the_time_flink_stamps_it_with(domain, event_time) -> None:
    sink = ListSink()
    spec = FaroFeatureConfig(entity_key=lambda o: o[0], feature_value=lambda o: o[2], on="output")
    config = FaroConfig(features={"amount": spec})
    traced = FaroFlink("p", lambda: sink).process_trace(Timed(), config, "timed")
    traced.open(_RuntimeContext())
    list(traced.on_timer(42, _Ctx("m1", domain)))
    traced.close()
    [entity] = sink.of_type(EventType.ENTITY)  # the side output is not an output
    assert (entity.entity_id, entity.event_time) == ("m1", event_time)


class _PublicOnlyContext:
    """A keyed context with PyFlink's public methods only (as another release or a
    test harness could hand over): the wrapper must read it through them."""

    def __init__(self) -> None:
        self.ctx = self
        self.ts: int | None = None
        self.wm: int | None = None

    def step(self, ts: int, wm: int | None) -> None:
        self.ts = ts
        if wm is not None:
            self.wm = wm

    def timestamp(self) -> int | None:
        return self.ts

    def timer_service(self) -> "_PublicOnlyContext":
        return self

    def current_watermark(self) -> int | None:
        return self.wm


class _PyFlinkContext:
    """PyFlink's own keyed context and timer services, as its runner builds them."""

    def __init__(self) -> None:
        self.internal = InternalTimerServiceImpl(None)
        self.ctx = InternalKeyedProcessFunctionContext(TimerServiceImpl(self.internal))

    def step(self, ts: int, wm: int | None) -> None:
        self.ctx.set_timestamp(ts)
        if wm is not None:
            self.internal.advance_watermark(wm)


@pytest.mark.parametrize("kind", ["pyflink", "public"])
def test_late_records_and_event_times_from_the_context_match_ground_truth(kind: str) -> None:
    """The keyed wrapper reads PyFlink's context attributes directly; the counts must
    equal what the public API says record by record, with the watermark moving."""
    rng = random.Random(5)
    sink = ListSink()
    traced = FaroFlink("p", lambda: sink).process_trace(PassThrough(), FaroConfig(), "pass")
    traced.open(_RuntimeContext())
    context = _PyFlinkContext() if kind == "pyflink" else _PublicOnlyContext()
    ctx = context.ctx
    if kind == "pyflink":  # the direct path is the one tested
        assert _reads(ctx) == (ctx, context.internal)
    else:
        assert isinstance(_reads(ctx)[0], _PublicReads)
    watermark, late, times = None, 0, []
    for i in range(3000):
        if i % 100 == 0:
            watermark = 1_000_000 + i * 10
        ts = 1_000_000 + i * 10 + rng.randrange(-800, 200)
        context.step(ts, watermark if i % 100 == 0 else None)
        late += ts < watermark
        times.append(ts)
        assert list(traced.process_element(("m", "A", 1.0, ts, "o"), ctx)) == [
            ("m", "A", 1.0, ts, "o")
        ]
    traced.close()
    [event] = sink.of_type(EventType.AGGREGATE)
    assert 0 < late < 3000
    assert (event.input_count, event.output_count, event.late_count) == (3000, 3000, late)
    assert (event.event_time_min, event.event_time_max) == (min(times), max(times))
    assert event.watermark == watermark


def test_a_co_process_counts_both_inputs_late_below_the_watermark() -> None:
    """Records of both inputs, through PyFlink's own context of a function of two
    streams not keyed, as its runner moves timestamp and watermark record by record."""
    rng = random.Random(11)
    sink = ListSink()
    traced = FaroFlink("p", lambda: sink).co_process_trace(OrdersAndRefunds(), None, "join")
    traced.open(_RuntimeContext())
    ctx = InternalProcessFunctionContext(NonKeyedTimerServiceImpl())
    watermark, late, times, outputs = None, 0, [], 0
    for i in range(2000):
        if i % 50 == 0:
            watermark = 1_000_000 + i * 10
            ctx.timer_service().advance_watermark(watermark)
        ts = 1_000_000 + i * 10 + rng.randrange(-600, 200)
        ctx.set_timestamp(ts)
        late += watermark is not None and ts < watermark
        times.append(ts)
        record = ("m", "A", rng.choice([5.0, 20.0, 80.0]), ts, "o")
        if i % 3:
            out = list(traced.process_element1(record, ctx))
            expected = ([record] if record[2] > 50 else [(SMALL, record)] if record[2] < 10
                        else [])  # fmt: skip
            outputs += record[2] > 50  # a side output is not an output
        else:
            out = list(traced.process_element2(record, ctx))
            expected = [("m", "A", -record[2], ts, "o")]
            outputs += 1
        assert out == expected
    traced.close()
    [event] = sink.of_type(EventType.AGGREGATE)
    assert 0 < late < 2000
    assert (event.input_count, event.output_count, event.late_count) == (2000, outputs, late)
    assert (event.event_time_min, event.event_time_max) == (min(times), max(times))
    assert (event.operator_type, event.watermark) == (OperatorType.JOIN, watermark)


class _BroadcastStates:
    """The operator state store's part a broadcast function uses: one broadcast state,
    a dict, whatever the descriptor."""

    def __init__(self) -> None:
        self.state: dict[str, float] = {}

    def get_broadcast_state(self, descriptor: object) -> "_BroadcastStates":
        return self

    def to_read_only_broadcast_state(self) -> "_BroadcastStates":
        return self

    def get(self, key: str) -> float | None:
        return self.state.get(key)

    def put(self, key: str, value: float) -> None:
        self.state[key] = value


def test_a_broadcast_process_counts_the_main_stream_late_below_the_watermark() -> None:
    """Through PyFlink's own two contexts of a broadcast function (the main stream's is
    read-only), as its runner moves timestamp and watermark: broadcast elements are
    not inputs, what the function emits for them is output."""
    rng = random.Random(17)
    sink = ListSink()
    traced = FaroFlink("p", lambda: sink).broadcast_process_trace(OrdersByRules(), None, "rules")
    traced.open(_RuntimeContext())
    states = _BroadcastStates()
    ctx = InternalBroadcastProcessFunctionContext(NonKeyedTimerServiceImpl(), states)
    read_only = InternalBroadcastProcessFunctionReadOnlyContext(NonKeyedTimerServiceImpl(), states)
    watermark, late, times, inputs, outputs = None, 0, [], 0, 0
    for i in range(2000):
        ts = 1_000_000 + i * 10 + rng.randrange(-600, 200)
        if i % 50 == 0:
            watermark = 1_000_000 + i * 10
        for c in (ctx, read_only):  # as PyFlink's runner does before each element
            c.set_timestamp(ts)
            if watermark is not None:
                c.timer_service().advance_watermark(watermark)
        record = ("m", "A", rng.choice([5.0, 20.0, 80.0]), ts, "o")
        if i % 4:
            out = list(traced.process_element(record, read_only))
            expected = ([record] if record[2] > 50 else [(SMALL, record)] if record[2] < 10
                        else [])  # fmt: skip
            late += watermark is not None and ts < watermark
            times.append(ts)
            inputs += 1
            outputs += record[2] > 50  # a side output is not an output
        else:
            out = list(traced.process_broadcast_element(record, ctx))
            expected = [("m", "rule", record[2], ts, "rules")]
            outputs += 1
            minimum = record[2]
        assert out == expected
    traced.close()
    [event] = sink.of_type(EventType.AGGREGATE)
    assert 0 < late < inputs
    assert (event.input_count, event.output_count, event.late_count) == (inputs, outputs, late)
    assert (event.event_time_min, event.event_time_max) == (min(times), max(times))
    assert (event.operator_type, event.watermark) == (OperatorType.PROCESS, watermark)
    assert states.state == {"m": minimum}  # the function's own state, untouched


def test_what_a_keyed_co_process_timer_emits_counts_as_output() -> None:
    class Timed(KeyedOrdersAndRefunds):
        def on_timer(self, timestamp, ctx):
            yield (ctx.get_current_key(), "T", 0.0, timestamp, "timer")

    sink = ListSink()
    traced = FaroFlink("p", lambda: sink).co_process_trace(Timed(), None, "join")
    traced.open(_RuntimeContext())
    assert list(traced.on_timer(42, _Ctx("m1"))) == [("m1", "T", 0.0, 42, "timer")]
    traced.close()
    [event] = sink.of_type(EventType.AGGREGATE)
    assert (event.input_count, event.output_count) == (0, 1)


def test_co_map_and_co_flat_map_count_both_inputs_with_event_times_read() -> None:
    sink = ListSink()
    faro = FaroFlink("p", lambda: sink, flush_interval=3600)
    spec = FaroFeatureConfig(entity_key=lambda r: r[0], feature_value=lambda r: r[1], on="output")
    config = FaroConfig(features={"amount": spec})
    co_map = faro.co_map_trace(OrdersOrRefunds(), config, "signed", event_time=lambda o: o[3])
    co_flat_map = faro.co_flat_map_trace(SplitLarge(), None, "split")
    co_map.open(_RuntimeContext())
    co_flat_map.open(_RuntimeContext())
    rng = random.Random(13)
    records = [("m1", "A", rng.choice([5.0, 30.0, 70.0]), 1_000_000 + i, "u") for i in range(300)]
    signed = [co_map.map1(r) if i % 2 else co_map.map2(r) for i, r in enumerate(records)]
    split = [out for s in signed if s is not None for out in co_flat_map.flat_map1(s)]
    split += [out for r in records[:40] for out in co_flat_map.flat_map2(r)]
    co_map.close()
    co_flat_map.close()
    expected = [None if i % 2 and r[2] < 10 else (r[0], r[2] if i % 2 else -r[2])
                for i, r in enumerate(records)]  # fmt: skip
    assert signed == expected
    kept = [s for s in expected if s is not None]
    large = [half for m, a in kept if abs(a) > 50 for half in ((m, a / 2), (m, a / 2))]
    assert split == large + [(r[0], r[2]) for r in records[:40]]
    mapped, flat = (e for e in sink.of_type(EventType.AGGREGATE))
    assert (mapped.input_count, mapped.output_count, mapped.late_count) == (300, len(kept), None)
    assert (mapped.event_time_min, mapped.event_time_max) == (1_000_000, 1_000_299)
    assert (flat.input_count, flat.output_count) == (len(kept) + 40, len(split))
    entities = sink.of_type(EventType.ENTITY)  # one per output, none for a dropped None
    assert sorted(e.feature_value for e in entities) == sorted(a for _, a in kept)


def test_late_records_count_as_the_windows_inputs_and_late_never_outputs() -> None:
    sink = ListSink()
    faro = FaroFlink("p", lambda: sink, flush_interval=3600)
    spec = FaroFeatureConfig(entity_key=lambda r: r[0], feature_value=lambda r: r[2], on="output")
    window = faro.window_trace(
        OrderAggFn(), FaroConfig(features={"revenue": spec, "order_count": FaroFeatureConfig()}),
        "order-agg-window", event_time=lambda o: o[3],
    )  # fmt: skip
    seen: list[tuple] = []
    late = faro.late_trace(window, lambda o: seen.append(o) or o[4])
    late.open(_RuntimeContext())
    rng = random.Random(7)
    records = [("m1", "A", float(i), 1_700_000_000_000 + rng.randrange(10**6), f"u{i}")
               for i in range(250)]  # fmt: skip
    out = [late.map(r) for r in records]
    late.close()
    assert out == [r[4] for r in records] and seen == records  # through the user's map
    [event] = sink.events  # no ENTITY events: a late record holds no window result
    assert (event.operator_id, event.operator_type, event.subtask_index) == (
        "order-agg-window",
        OperatorType.WINDOW,
        1,
    )
    assert (event.input_count, event.output_count, event.late_count) == (250, 0, 250)
    # the window's feature names, so its features' health counts them, and no statistics
    assert (event.features, event.feature_stats) == (["revenue", "order_count"], [])
    assert (event.event_time_min, event.event_time_max) == (
        min(r[3] for r in records),
        max(r[3] for r in records),
    )
    assert (event.window_start, event.window_end, event.watermark) == (None, None, None)


def test_late_trace_takes_what_window_trace_or_aggregate_trace_returned() -> None:
    faro = FaroFlink("p", ListSink)
    expected = r"late_trace takes what window_trace, aggregate_trace or reduce_trace"
    with pytest.raises(TypeError, match=expected):
        faro.late_trace(OrderAggFn())
    agg = faro.aggregate_trace(RevenueAgg(), FaroConfig(features=["revenue"]), "revenue-window")
    late = faro.late_trace(agg)
    assert (late._capture.operator_id, late._capture.config.feature_names) == (
        "revenue-window",
        ["revenue"],
    )


class _FireContext:
    """What PyFlink hands a process window function at a fire."""

    def __init__(self, window: TimeWindow, watermark: int):
        self._window, self._watermark = window, watermark

    def window(self) -> TimeWindow:
        return self._window

    def current_watermark(self) -> int:
        return self._watermark


def test_a_window_function_reports_the_watermark_only_through_process() -> None:
    sink = ListSink()
    faro = FaroFlink("p", lambda: sink)
    window = TimeWindow(1_700_000_000_000, 1_700_000_010_000)
    pane = [("m1", "A", 2.5, window.start + 5, "u1"), ("m1", "B", 4.0, window.start + 9, "u2")]
    fires = []
    for call in ("apply", "process"):
        traced = faro.window_trace(MerchantWindowTotals(), None, call, event_time=lambda o: o[3])
        traced.open(_RuntimeContext())
        if call == "apply":
            fires.append(list(traced.apply("m1", window, pane)))
        else:
            context = _FireContext(window, window.end + 250)
            fires.append(list(traced.process("m1", context, pane)))
        traced.close()
    [applied, processed] = fires
    assert (
        [tuple(r) for r in applied]
        == [tuple(r) for r in processed]
        == [("m1", window.start, 2, 6.5)]
    )
    assert [(e.operator_id, e.input_count, e.output_count, e.watermark) for e in sink.events] == [
        ("apply", 2, 1, None),
        ("process", 2, 1, window.end + 250),
    ]
