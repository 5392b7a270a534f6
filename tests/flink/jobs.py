"""Small PyFlink jobs with known input, for the adapter tests."""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pyflink.common import Row, Types, WatermarkStrategy
from pyflink.common.time import Time
from pyflink.common.typeinfo import TypeInformation
from pyflink.common.watermark_strategy import TimestampAssigner
from pyflink.datastream import DataStream, OutputTag, StreamExecutionEnvironment
from pyflink.datastream.functions import (
    AggregateFunction,
    AllWindowFunction,
    BroadcastProcessFunction,
    CoFlatMapFunction,
    CoMapFunction,
    CoProcessFunction,
    KeyedBroadcastProcessFunction,
    KeyedCoProcessFunction,
    KeyedProcessFunction,
    ProcessAllWindowFunction,
    ProcessFunction,
    ProcessWindowFunction,
    WindowFunction,
)
from pyflink.datastream.state import MapStateDescriptor
from pyflink.datastream.window import TumblingEventTimeWindows

from faro import CaptureEvent
from faro.core.json_codec import from_json, to_json

WINDOW_MS = 10_000


def order_type() -> TypeInformation:
    """(merchant, category, amount, ts, user). A new object each time: as a window's
    state type it is pickled with the window's function (see :func:`revenue_type`)."""
    return Types.TUPLE(
        [Types.STRING(), Types.STRING(), Types.DOUBLE(), Types.LONG(), Types.STRING()]
    )


ORDER_TYPE = order_type()
SUMMARY_TYPE = Types.ROW_NAMED(
    ["merchant", "category", "order_count", "revenue"],
    [Types.STRING(), Types.STRING(), Types.LONG(), Types.DOUBLE()],
)
SMALL = OutputTag("small-orders", ORDER_TYPE)


def revenue_type() -> TypeInformation:
    """(revenue, orders): RevenueAgg's accumulator and result. A new object each
    time: PyFlink 2.x cannot pickle a type object a job already used, and an
    accumulator's type is pickled with its function."""
    return Types.TUPLE([Types.DOUBLE(), Types.LONG()])


def totals_type() -> TypeInformation:
    return Types.ROW_NAMED(
        ["merchant", "window_start", "order_count", "revenue"],
        [Types.STRING(), Types.LONG(), Types.LONG(), Types.DOUBLE()],
    )


@dataclass(frozen=True)
class Order:
    merchant: str
    category: str
    amount: float
    ts: int
    user: str

    def as_tuple(self) -> tuple[str, str, float, int, str]:
        return (self.merchant, self.category, self.amount, self.ts, self.user)


def orders(n: int, users: int = 50, seed: int = 3) -> list[Order]:
    """In event-time order. The stream assigns monotonous timestamps, so a record
    older than one before it is late, and Flink drops it from its window when a
    periodic watermark happens to land between the two: how often depends on the
    machine's speed, and the tests' ground truth counts every record."""
    rng = random.Random(seed)
    data = [
        Order(
            merchant=f"m{rng.randrange(5)}",
            category=rng.choice("ABC"),
            amount=round(rng.uniform(1, 100), 2),
            ts=1_700_000_000_000 + rng.randrange(60_000),
            user=f"user-{rng.randrange(users)}",
        )
        for _ in range(n)
    ]
    return sorted(data, key=lambda o: o.ts)


class _Ts(TimestampAssigner):
    def extract_timestamp(self, value, record_timestamp) -> int:
        return int(value[3])


def panes_of(data: list[Order]) -> dict[tuple[str, int], list[Order]]:
    """The orders of each (merchant, window start) of the tumbling windows."""
    by_pane: dict[tuple[str, int], list[Order]] = defaultdict(list)
    for o in data:
        by_pane[(o.merchant, o.ts - o.ts % WINDOW_MS)].append(o)
    return by_pane


def windows_of(data: list[Order]) -> dict[int, list[Order]]:
    """The orders of each tumbling window, merchants together (``window_all``)."""
    by_window: dict[int, list[Order]] = defaultdict(list)
    for o in data:
        by_window[o.ts - o.ts % WINDOW_MS].append(o)
    return by_window


class FileSink:
    """Keeps its events and writes them to a file of its own in ``out_dir`` when
    closed, ``delay_s`` later (a destination that takes that long to acknowledge
    them). For jobs run as scripts: every subtask's sink writes its own file."""

    def __init__(self, out_dir: str, delay_s: float = 0.0):
        self.path = Path(out_dir) / f"events-{uuid.uuid4().hex}.jsonl"
        self.delay_s = delay_s
        self.events: list[CaptureEvent] = []
        self._lock = threading.Lock()

    def emit(self, event: CaptureEvent) -> None:
        with self._lock:
            self.events.append(event)

    def flush(self, timeout: float | None = None) -> bool:
        return True

    def close(self) -> None:
        time.sleep(self.delay_s)
        self.path.write_text("".join(to_json(e) + "\n" for e in self.events))


def read_events(out_dir: Path) -> list[CaptureEvent]:
    """Every event the FileSinks wrote in ``out_dir``."""
    return [
        e for f in out_dir.glob("events-*.jsonl") for line in f.read_text().splitlines()
        for e in from_json(line)
    ]  # fmt: skip


def order_stream(env: StreamExecutionEnvironment, data: list[Order]) -> DataStream:
    return timestamped(env.from_collection([o.as_tuple() for o in data], type_info=ORDER_TYPE))


def timestamped(orders: DataStream) -> DataStream:
    """Each order's ``ts`` as its timestamp, and watermarks that follow them."""
    strategy = WatermarkStrategy.for_monotonous_timestamps().with_timestamp_assigner(_Ts())
    return orders.assign_timestamps_and_watermarks(strategy)


class OrderAggFn(ProcessWindowFunction):
    """One summary row per category present in the pane."""

    def process(self, key, context, elements) -> Iterable[Row]:
        by_category: dict[str, list[float]] = {}
        for _merchant, category, amount, _ts, _user in elements:
            by_category.setdefault(category, []).append(amount)
        for category in sorted(by_category):
            amounts = by_category[category]
            yield Row(
                merchant=key, category=category, order_count=len(amounts), revenue=sum(amounts)
            )


class RevenueAgg(AggregateFunction):
    """(revenue, orders), folded one order at a time."""

    def create_accumulator(self):
        return (0.0, 0)

    def add(self, value, accumulator):
        return (accumulator[0] + value[2], accumulator[1] + 1)

    def get_result(self, accumulator):
        return accumulator

    def merge(self, a, b):
        return (a[0] + b[0], a[1] + b[1])


class MerchantTotals(ProcessWindowFunction):
    """RevenueAgg's result as a row naming the merchant and the window."""

    def process(self, key, context, elements):
        for revenue, count in elements:
            yield Row(
                merchant=key, window_start=context.window().start, order_count=count,
                revenue=revenue,
            )  # fmt: skip


class MerchantTotalsApplied(WindowFunction):
    """MerchantTotals as a WindowFunction (``apply``)."""

    def apply(self, key, window, inputs):
        for revenue, count in inputs:
            yield Row(merchant=key, window_start=window.start, order_count=count, revenue=revenue)


class MerchantWindowTotals(WindowFunction):
    """Each merchant's orders and revenue in the window, from the pane's orders."""

    def apply(self, key, window, inputs):
        amounts = [o[2] for o in inputs]
        yield Row(merchant=key, window_start=window.start, order_count=len(amounts),
                  revenue=sum(amounts))  # fmt: skip


class WindowTotals(AllWindowFunction):
    """Every order of the window (``window_all``), as an AllWindowFunction."""

    def apply(self, window, inputs):
        amounts = [o[2] for o in inputs]
        yield Row(window_start=window.start, order_count=len(amounts), revenue=sum(amounts))


def window_totals_type() -> TypeInformation:
    return Types.ROW_NAMED(
        ["window_start", "order_count", "revenue"], [Types.LONG(), Types.LONG(), Types.DOUBLE()]
    )


class AllOrders(ProcessAllWindowFunction):
    """Every order of the window, merchants together (``window_all``)."""

    def process(self, context, elements):
        amounts = [o[2] for o in elements]
        yield Row(window_start=context.window().start, order_count=len(amounts),
                  revenue=sum(amounts))  # fmt: skip


class BigOrders(KeyedProcessFunction):
    """Keeps orders over 50, sends orders under 10 to a side output."""

    def process_element(self, value, ctx):
        if value[2] > 50:
            yield value
        elif value[2] < 10:
            yield SMALL, value


class PassThrough(KeyedProcessFunction):
    """Emits each record as it came."""

    def process_element(self, value, ctx):
        yield value


class Unkeyed(ProcessFunction):
    """Emits each record as it came, on a stream that is not keyed."""

    def process_element(self, value, ctx):
        yield value


class _OrdersAndRefunds:
    """Orders (first input) over 50 pass, under 10 go to a side output; every refund
    (second input) passes as an order of negative amount."""

    def process_element1(self, value, ctx):
        if value[2] > 50:
            yield value
        elif value[2] < 10:
            yield SMALL, value

    def process_element2(self, value, ctx):
        yield (value[0], value[1], -value[2], value[3], value[4])


class OrdersAndRefunds(_OrdersAndRefunds, CoProcessFunction):
    pass


class KeyedOrdersAndRefunds(_OrdersAndRefunds, KeyedCoProcessFunction):
    pass


def minimums() -> MapStateDescriptor:
    """The broadcast state of the rule functions: each merchant's latest minimum."""
    return MapStateDescriptor("minimums", Types.STRING(), Types.DOUBLE())


class _ByRules:
    """Orders (the main stream) over 50 pass, under 10 go to a side output, whatever
    the broadcast state holds when they arrive (so the output does not depend on how
    the two streams interleave); each rule (an order on the broadcast stream, its
    amount the merchant's minimum) is stored and emitted by every parallel instance
    as an order of category "rule"."""

    def process_element(self, value, ctx):
        ctx.get_broadcast_state(minimums()).get(value[0])  # read, as a rule function would
        if value[2] > 50:
            yield value
        elif value[2] < 10:
            yield SMALL, value

    def process_broadcast_element(self, value, ctx):
        ctx.get_broadcast_state(minimums()).put(value[0], value[2])
        yield (value[0], "rule", value[2], value[3], "rules")


class OrdersByRules(_ByRules, BroadcastProcessFunction):
    pass


class KeyedOrdersByRules(_ByRules, KeyedBroadcastProcessFunction):
    """Also sets an event-time timer at each order under 10, which emits an order of
    category "timer" for its merchant (one per merchant and time: Flink keeps one
    timer per key and timestamp)."""

    def process_element(self, value, ctx):
        if value[2] < 10:
            ctx.timer_service().register_event_time_timer(value[3])
        yield from super().process_element(value, ctx)

    def on_timer(self, timestamp, ctx):
        yield (ctx.get_current_key(), "timer", 0.0, timestamp, "timers")


class PassByRules(KeyedBroadcastProcessFunction):
    """Emits each order as it came, after reading its merchant's rule; stores each
    rule and emits nothing for it."""

    def process_element(self, value, ctx):
        ctx.get_broadcast_state(minimums()).get(value[0])
        yield value

    def process_broadcast_element(self, value, ctx):
        ctx.get_broadcast_state(minimums()).put(value[0], value[2])
        return []


class OrdersOrRefunds(CoMapFunction):
    """(merchant, signed amount): orders as they are, refunds negative; orders under
    10 give None, which PyFlink drops."""

    def map1(self, value):
        return None if value[2] < 10 else (value[0], value[2])

    def map2(self, value):
        return (value[0], -value[2])


class SplitLarge(CoFlatMapFunction):
    """From the first input, amounts over 50 in two halves; from the second, each as is."""

    def flat_map1(self, value):
        if abs(value[1]) > 50:
            yield (value[0], value[1] / 2)
            yield (value[0], value[1] / 2)

    def flat_map2(self, value):
        yield (value[0], value[2])


def windowed(stream: DataStream, fn: ProcessWindowFunction) -> DataStream:
    """Orders keyed by merchant in tumbling event-time windows, summarized by ``fn``."""
    return (
        stream.key_by(lambda o: o[0], key_type=Types.STRING())
        .window(TumblingEventTimeWindows.of(Time.milliseconds(WINDOW_MS)))
        .process(fn, SUMMARY_TYPE)
    )


def window_job(
    env: StreamExecutionEnvironment, data: list[Order], fn: ProcessWindowFunction
) -> DataStream:
    return windowed(order_stream(env, data), fn)


def collect(stream: DataStream) -> list[tuple]:
    """Runs the job; floats are rounded to 1e-6 because with parallel sources the
    order elements reach a pane varies between runs, and so do a sum's last bits."""
    with stream.execute_and_collect() as results:
        return [tuple(round(v, 6) if isinstance(v, float) else v for v in r) for r in results]
