"""PyFlink function wrappers: translate Flink's callbacks into recorder calls.

Each wrapper holds the user's function and a :class:`Capture` (everything
needed to build a recorder), is pickled to the Python worker with them, and
builds the sink and recorder in ``open()``. Outputs pass through unchanged;
side outputs (``(OutputTag, value)`` pairs) are passed on but not counted.

An output's ENTITY events carry the event time of the input that produced it
(map, filter, flat_map, process, co-process), the window's last millisecond (a time
window's results) or the timer's time (event-time timers): the timestamps
Flink gives those records. A traced operator downstream reads the same
timestamp, so a record's ENTITY events share one trace id across operators.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from pyflink.datastream.functions import (
    AllWindowFunction,
    BroadcastProcessFunction,
    CoFlatMapFunction,
    CoMapFunction,
    CoProcessFunction,
    FilterFunction,
    FlatMapFunction,
    KeyedBroadcastProcessFunction,
    KeyedCoProcessFunction,
    KeyedProcessFunction,
    MapFunction,
    ProcessAllWindowFunction,
    ProcessFunction,
    ProcessWindowFunction,
    RuntimeContext,
    WindowFunction,
)
from pyflink.datastream.output_tag import OutputTag
from pyflink.datastream.time_domain import TimeDomain
from pyflink.datastream.window import TimeWindow

try:  # PyFlink's own context classes, read directly by the keyed wrapper (_reads)
    from pyflink.fn_execution.datastream.process.process_function import (
        InternalKeyedProcessFunctionContext as _KEYED_CONTEXT,
    )
    from pyflink.fn_execution.datastream.process.timerservice_impl import (
        InternalTimerServiceImpl as _INTERNAL_TIMER_SERVICE,
    )
    from pyflink.fn_execution.datastream.process.timerservice_impl import (
        TimerServiceImpl as _TIMER_SERVICE,
    )
except ImportError:  # pragma: no cover - a PyFlink release without them: no context is
    _KEYED_CONTEXT = _TIMER_SERVICE = _INTERNAL_TIMER_SERVICE = None  # of these types

from faro.core.config import Extractor, FaroConfig
from faro.core.events import OperatorType
from faro.core.failures import FailureLog
from faro.core.recorder import OperatorRecorder
from faro.core.sink import SinkFactory, build_sink
from faro.flink.lifecycle import WRAPPERS

log = logging.getLogger("faro.flink")
_monotonic = time.monotonic


@dataclass(frozen=True)
class Capture:
    pipeline_id: str
    operator_id: str
    operator_type: OperatorType
    config: FaroConfig
    sink_factory: SinkFactory
    flush_interval_s: float
    event_time: Extractor | None
    observes_late: bool

    def start(self, runtime_context: RuntimeContext) -> OperatorRecorder:
        failures = FailureLog(f"faro operator {self.operator_id!r}", log)
        return OperatorRecorder(
            self.pipeline_id,
            self.operator_id,
            self.operator_type,
            self.config,
            build_sink(self.sink_factory, failures),
            subtask_index=subtask_index(runtime_context),
            observes_late=self.observes_late,
            event_time=self.event_time,
        )


def subtask_index(runtime_context: RuntimeContext) -> int:
    """The parallel instance's index. PyFlink 2.x's thread mode asks the Java context
    for ``getIndexOfThisSubtask()``, which Flink 2.0 moved to ``getTaskInfo()``, so
    there the public call raises; the wrapped Java context answers instead."""
    try:
        return int(runtime_context.get_index_of_this_subtask())
    except AttributeError:
        java = runtime_context._runtime_context
        return int(java.getTaskInfo().getIndexOfThisSubtask())


@contextlib.contextmanager
def _failures_to_stderr() -> Iterator[None]:
    """While a wrapper closes, faro's log records also go to the worker's stderr.

    The sink's last flush runs in ``close()``, and a destination that is down
    is often first noticed there. By then PyFlink's Python worker has stopped
    forwarding log records to Flink's log, so without this they vanish. In a
    local run the worker's stderr is the job's own; on a cluster it is the
    TaskManager's output file.
    """
    logger = logging.getLogger("faro")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


class _PublicReads:
    """A context's timestamp and watermark read through PyFlink's public API, under
    the attribute names PyFlink's own classes keep them in (see :func:`_reads`)."""

    __slots__ = ("_ctx", "_watermark_of")

    def __init__(self, ctx: Any):
        self._ctx = ctx
        self._watermark_of = _watermark_reader(ctx)

    @property
    def _timestamp(self) -> int | None:
        return self._ctx.timestamp()

    @property
    def _current_watermark(self) -> int | None:
        return self._watermark_of()


def _watermark_reader(ctx: Any) -> Callable[[], int | None]:
    """``ctx.current_watermark`` if it answers (a broadcast function's contexts, whose
    public API has no timer service), else the timer service's, which PyFlink keeps
    for the operator's life. It is tried once because PyFlink's thread mode gives a
    keyed broadcast function's contexts one that calls a Java method which is not
    there; their timer service answers."""
    read = getattr(ctx, "current_watermark", None)
    if read is not None:
        with contextlib.suppress(Exception):
            read()
            return read
    return ctx.timer_service().current_watermark


def _reads(ctx: Any) -> tuple[Any, Any]:
    """Where to read a keyed context's timestamp (``._timestamp``) and watermark
    (``._current_watermark``) on every record.

    PyFlink creates the context and its timer services once per operator and
    keeps both values in plain attributes, so read there they cost one
    attribute load, against three Python calls (~0.15 µs) for
    ``ctx.timer_service().current_watermark()``. That holds for the classes
    checked here, and only if the direct reads agree with the public API right
    now; any other context (another PyFlink release, a test's stand-in) is
    read through the public API.
    """
    public = _PublicReads(ctx)
    service: Any = getattr(ctx, "_timer_service", None)
    internal: Any = getattr(service, "_internal", None)
    if not (
        type(ctx) is _KEYED_CONTEXT
        and type(service) is _TIMER_SERVICE
        and type(internal) is _INTERNAL_TIMER_SERVICE
    ):
        return public, public
    try:
        agree = (ctx._timestamp, internal._current_watermark) == (
            public._timestamp,
            public._current_watermark,
        )
    except AttributeError:
        agree = False
    return (ctx, internal) if agree else (public, public)


def _is_side_output(item: Any) -> bool:
    return type(item) is tuple and len(item) == 2 and isinstance(item[0], OutputTag)


class _Traced:
    """Lifecycle shared by the wrappers: recorder in open, final flush in close,
    and a periodic flush checked on each record (no timers: a wrapper must not
    add timers the user's function would see)."""

    _fn: Any
    _capture: Capture

    def _setup(
        self, fn: Any, capture: Capture, method: str | None = None, second: str | None = None
    ) -> None:
        self._fn = fn
        self._capture = capture
        # the user's method (map/filter/flat_map: a Function's method or a plain callable)
        # and, for a function of two inputs, the second input's; bound in open()
        self._method, self._second = method, second
        self._rec: OperatorRecorder | None = None
        self._next_flush = 0.0

    def open(self, runtime_context: RuntimeContext) -> None:
        if hasattr(self._fn, "open"):
            self._fn.open(runtime_context)
        self._rec = self._capture.start(runtime_context)
        WRAPPERS.opened(self)
        # Resolved once here rather than per record: the per-record paths run for every
        # record, and a plain PyFlink record costs only ~45 µs.
        if self._method is not None:
            self._user = method_of(self._fn, self._method)
        if self._second is not None:
            self._user2 = getattr(self._fn, self._second)
        # an explicit event_time extractor wins over the element timestamp
        self._stamped = not self._capture.event_time
        self._next_flush = _monotonic() + self._capture.flush_interval_s

    def close(self) -> None:
        try:
            if hasattr(self._fn, "close"):
                self._fn.close()
        finally:
            if self._rec is not None:
                with _failures_to_stderr():
                    self._rec.close()
            WRAPPERS.closed(self)

    def _flush(self, rec: OperatorRecorder) -> None:
        """The periodic flush, once ``_next_flush`` has passed (callers check it inline)."""
        self._next_flush = _monotonic() + self._capture.flush_interval_s
        rec.flush()

    def _pass_outputs(
        self, rec: OperatorRecorder, outputs: Iterable[Any] | None, event_time: int | None
    ) -> Iterable[Any]:
        if outputs is None:
            return
        for item in outputs:
            if not _is_side_output(item):
                rec.record_out(item, event_time)
            yield item

    def _flat_map(self, value: Any, user: Any = None) -> Iterator[Any]:
        """One record through a flat-map function: ``user`` (default: the only or
        first input's)."""
        rec = self._rec
        assert rec is not None, "open() was not called"
        event_time = rec.record_in(value)
        yield from self._pass_outputs(rec, (user or self._user)(value), event_time)
        if _monotonic() >= self._next_flush:
            self._flush(rec)


class TracedWindow(_Traced):
    """One AGGREGATE event per window fire, for the window wrappers below and the
    incremental ones (:mod:`faro.flink.aggregate`)."""

    def _fired(
        self, context: Any, outputs_of: Callable[[OperatorRecorder], Iterable[Any] | None]
    ) -> Iterator[Any]:
        """``outputs_of`` counts the fire's inputs and returns what the user's function
        emits for them."""
        rec = self._rec
        assert rec is not None, "open() was not called"
        current_watermark = getattr(context, "current_watermark", None)
        if current_watermark is not None:  # PyFlink gives an all-window function none
            rec.on_watermark(current_watermark())
        window = context.window()
        # Flink stamps a time window's results with its last millisecond; count and
        # global windows have no time of their own
        stamp = window.max_timestamp() if isinstance(window, TimeWindow) else None
        yield from self._pass_outputs(rec, outputs_of(rec), stamp)
        rec.flush(
            window_start=getattr(window, "start", None), window_end=getattr(window, "end", None)
        )


def _counted(rec: OperatorRecorder, elements: Iterable[Any]) -> list[Any]:
    """The pane's elements, each counted as an input."""
    if not isinstance(elements, list):
        elements = list(elements)
    for element in elements:
        rec.record_in(element)
    return elements


class TracedWindowFunction(TracedWindow, ProcessWindowFunction):
    def __init__(self, fn: ProcessWindowFunction, capture: Capture):
        self._setup(fn, capture)

    def process(
        self, key: Any, context: ProcessWindowFunction.Context, elements: Iterable[Any]
    ) -> Iterator[Any]:
        return self._fired(
            context, lambda rec: self._fn.process(key, context, _counted(rec, elements))
        )

    def clear(self, context: ProcessWindowFunction.Context) -> None:
        self._fn.clear(context)


class TracedAllWindowFunction(TracedWindow, ProcessAllWindowFunction):
    """A window over the whole stream (``window_all``)."""

    def __init__(self, fn: ProcessAllWindowFunction, capture: Capture):
        self._setup(fn, capture)

    def process(
        self, context: ProcessAllWindowFunction.Context, elements: Iterable[Any]
    ) -> Iterator[Any]:
        return self._fired(context, lambda rec: self._fn.process(context, _counted(rec, elements)))

    def clear(self, context: ProcessAllWindowFunction.Context) -> None:
        self._fn.clear(context)


class _WindowOnly:
    """The context of a fire for a function that ``apply()`` hands the window alone."""

    __slots__ = ("_window",)

    def __init__(self, window: Any):
        self._window = window

    def window(self) -> Any:
        return self._window


class TracedAppliedWindow(
    TracedWindow, ProcessWindowFunction, ProcessAllWindowFunction, WindowFunction, AllWindowFunction
):
    """A WindowFunction (or AllWindowFunction, after ``window_all``), the kind
    ``.apply()`` takes. PyFlink hands those the window but no context, so no
    watermark; the traced one is also a process window function, so
    ``.process(traced)`` in place of ``.apply(fn)`` computes the same and reports
    the watermark at each fire too."""

    def __init__(self, fn: WindowFunction | AllWindowFunction, capture: Capture):
        self._setup(fn, capture)

    def apply(self, *args: Any) -> Iterator[Any]:
        key, window, inputs = args if len(args) == 3 else (None, *args)
        return self._fired(
            _WindowOnly(window), lambda rec: self._applied(key, window, _counted(rec, inputs))
        )

    def process(self, *args: Any) -> Iterator[Any]:
        key, context, elements = args if len(args) == 3 else (None, *args)
        return self._fired(
            context,
            lambda rec: self._applied(key, context.window(), _counted(rec, elements)),
        )

    def _applied(self, key: Any, window: Any, elements: list[Any]) -> Iterable[Any] | None:
        if isinstance(self._fn, WindowFunction):
            return self._fn.apply(key, window, elements)
        return self._fn.apply(window, elements)

    def clear(self, context: Any) -> None:
        """A WindowFunction keeps no per-window state of its own to clear."""


class _ProcessTraced(_Traced):
    """What the process-function wrappers share (one input or two, keyed or not):
    per-record counting with each element's timestamp and the watermark from its
    context, late = below the watermark, outputs counted as they pass (side
    outputs not), and on keyed streams what timers emit."""

    def _setup_process(self, fn: Any, capture: Capture, first: str, second: str | None) -> None:
        self._setup(fn, capture, first, second)
        self._ctx: Any = None
        self._watermark: int | None = None  # as the context gave it, valid or not

    def _element(self, value: Any, ctx: Any, process: Any = None) -> Iterator[Any]:
        """One element through ``process`` (default: the user's only or first input)."""
        rec = self._rec
        assert rec is not None, "open() was not called"
        if ctx is not self._ctx:  # PyFlink hands over the same context every time
            self._ctx = ctx
            self._times, self._marks = _reads(ctx)
        watermark = self._marks._current_watermark
        if watermark != self._watermark:
            self._watermark = watermark
            rec.on_watermark(watermark)
        event_time = rec.record_in(value, self._times._timestamp if self._stamped else None)
        # _pass_outputs inlined: this runs per record, and a plain record costs ~45 µs
        # here, so each 0.1 µs is 0.2 % of the job's throughput
        outputs = (process or self._user)(value, ctx)
        if outputs is not None:
            record_out = rec.record_out
            for item in outputs:
                if type(item) is not tuple or not _is_side_output(item):
                    record_out(item, event_time)
                yield item
        if _monotonic() >= self._next_flush:
            self._flush(rec)

    def _on_timer(self, timestamp: int, ctx: Any) -> Iterator[Any]:
        rec = self._rec
        assert rec is not None, "open() was not called"
        # Flink stamps what an event-time timer emits with the timer's time, and what a
        # processing-time timer emits with none
        stamp = timestamp if ctx.time_domain() == TimeDomain.EVENT_TIME else None
        yield from self._pass_outputs(rec, self._fn.on_timer(timestamp, ctx), stamp)
        if _monotonic() >= self._next_flush:
            self._flush(rec)


class TracedKeyedProcessFunction(_ProcessTraced, KeyedProcessFunction):
    def __init__(self, fn: KeyedProcessFunction, capture: Capture):
        self._setup_process(fn, capture, "process_element", None)

    process_element = _ProcessTraced._element
    on_timer = _ProcessTraced._on_timer


class TracedProcessFunction(_ProcessTraced, ProcessFunction):
    """A process function on a stream that is not keyed (PyFlink has no timers there)."""

    def __init__(self, fn: ProcessFunction, capture: Capture):
        self._setup_process(fn, capture, "process_element", None)

    process_element = _ProcessTraced._element


class TracedCoProcessFunction(_ProcessTraced, CoProcessFunction):
    """Two inputs, not keyed: each input's records count as the operator's inputs."""

    def __init__(self, fn: CoProcessFunction, capture: Capture):
        self._setup_process(fn, capture, "process_element1", "process_element2")

    process_element1 = _ProcessTraced._element

    def process_element2(self, value: Any, ctx: CoProcessFunction.Context) -> Iterator[Any]:
        return self._element(value, ctx, self._user2)


class TracedKeyedCoProcessFunction(_ProcessTraced, KeyedCoProcessFunction):
    """Two keyed inputs: each input's records count as the operator's inputs."""

    def __init__(self, fn: KeyedCoProcessFunction, capture: Capture):
        self._setup_process(fn, capture, "process_element1", "process_element2")

    process_element1 = _ProcessTraced._element

    def process_element2(self, value: Any, ctx: KeyedCoProcessFunction.Context) -> Iterator[Any]:
        return self._element(value, ctx, self._user2)

    on_timer = _ProcessTraced._on_timer


class _BroadcastTraced(_ProcessTraced):
    """A function of a stream connected with a broadcast stream. The main stream's
    records are the inputs. Broadcast elements are not: Flink hands each of them to
    every parallel instance, so counted they would add up once per instance and
    break the hand-off from the operator upstream. What the function emits for them
    counts as output, stamped with their timestamp."""

    def process_broadcast_element(self, value: Any, ctx: Any) -> Iterator[Any]:
        rec = self._rec
        assert rec is not None, "open() was not called"
        yield from self._pass_outputs(rec, self._user2(value, ctx), ctx.timestamp())
        if _monotonic() >= self._next_flush:
            self._flush(rec)


class TracedBroadcastProcessFunction(_BroadcastTraced, BroadcastProcessFunction):
    def __init__(self, fn: BroadcastProcessFunction, capture: Capture):
        self._setup_process(fn, capture, "process_element", "process_broadcast_element")

    process_element = _ProcessTraced._element


class TracedKeyedBroadcastProcessFunction(_BroadcastTraced, KeyedBroadcastProcessFunction):
    """As :class:`TracedBroadcastProcessFunction`, on a keyed main stream, with timers."""

    def __init__(self, fn: KeyedBroadcastProcessFunction, capture: Capture):
        self._setup_process(fn, capture, "process_element", "process_broadcast_element")

    process_element = _ProcessTraced._element
    on_timer = _ProcessTraced._on_timer


def method_of(fn: Any, method: str) -> Callable[..., Any]:
    """PyFlink accepts both Function objects and plain callables for map/filter/flat_map."""
    return getattr(fn, method) if hasattr(fn, method) else fn


class TracedMapFunction(_Traced, MapFunction):
    def __init__(self, fn: MapFunction | Callable[[Any], Any], capture: Capture):
        self._setup(fn, capture, "map")

    def map(self, value: Any) -> Any:
        rec = self._rec
        assert rec is not None, "open() was not called"
        event_time = rec.record_in(value)
        out = self._user(value)
        rec.record_out(out, event_time)
        if _monotonic() >= self._next_flush:
            self._flush(rec)
        return out


class TracedFilterFunction(_Traced, FilterFunction):
    def __init__(self, fn: FilterFunction | Callable[[Any], bool], capture: Capture):
        self._setup(fn, capture, "filter")

    def filter(self, value: Any) -> bool:
        rec = self._rec
        assert rec is not None, "open() was not called"
        event_time = rec.record_in(value)
        keep = self._user(value)
        if keep:
            rec.record_out(value, event_time)
        if _monotonic() >= self._next_flush:
            self._flush(rec)
        return keep


def _same(value: Any) -> Any:
    return value


class TracedLateRecords(_Traced, MapFunction):
    """A window's late-data side output, counted as the window operator's own: each
    record is an input of the window that no pane received, so it counts as an
    input and as late, and never as an output."""

    def __init__(self, fn: MapFunction | Callable[[Any], Any] | None, capture: Capture):
        self._setup(_same if fn is None else fn, capture, "map")

    def map(self, value: Any) -> Any:
        rec = self._rec
        assert rec is not None, "open() was not called"
        rec.record_in(value)
        rec.record_late()
        out = self._user(value)
        if _monotonic() >= self._next_flush:
            self._flush(rec)
        return out


class TracedFlatMapFunction(_Traced, FlatMapFunction):
    def __init__(self, fn: FlatMapFunction | Callable[[Any], Iterable[Any]], capture: Capture):
        self._setup(fn, capture, "flat_map")

    flat_map = _Traced._flat_map


class TracedCoMapFunction(_Traced, CoMapFunction):
    """Both inputs' records count as inputs; each result as an output (PyFlink drops
    a ``None`` result, so it is not one)."""

    def __init__(self, fn: CoMapFunction, capture: Capture):
        self._setup(fn, capture, "map1", "map2")

    def map1(self, value: Any) -> Any:
        return self._map(self._user, value)

    def map2(self, value: Any) -> Any:
        return self._map(self._user2, value)

    def _map(self, user: Callable[[Any], Any], value: Any) -> Any:
        rec = self._rec
        assert rec is not None, "open() was not called"
        event_time = rec.record_in(value)
        out = user(value)
        if out is not None:
            rec.record_out(out, event_time)
        if _monotonic() >= self._next_flush:
            self._flush(rec)
        return out


class TracedCoFlatMapFunction(_Traced, CoFlatMapFunction):
    def __init__(self, fn: CoFlatMapFunction, capture: Capture):
        self._setup(fn, capture, "flat_map1", "flat_map2")

    flat_map1 = _Traced._flat_map

    def flat_map2(self, value: Any) -> Iterator[Any]:
        return self._flat_map(value, self._user2)
