"""Windows that aggregate incrementally: ``windowed.aggregate(agg_fn, window_fn)``,
and those that reduce, as the same aggregation (:class:`Reduction`).

Flink folds each element into its pane's accumulator as it arrives and hands the
window function one value per fire, so the elements are gone by then. The pane's
size and event-time range travel in the accumulator instead: the traced
AggregateFunction folds a count and the range next to the user's accumulator,
and the traced window function unpacks them at the fire, passes the user's
result on, and reports the fire as every traced window does (:class:`TracedWindow`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple, TypeAlias

from pyflink.common import Types
from pyflink.common.typeinfo import TypeInformation
from pyflink.datastream.functions import (
    AggregateFunction,
    AllWindowFunction,
    ProcessAllWindowFunction,
    ProcessWindowFunction,
    WindowFunction,
)

from faro.core.config import Extractor
from faro.core.events import TIME_HIGH, TIME_LOW
from faro.core.failures import FailureLog
from faro.core.recorder import OperatorRecorder, event_time_reader
from faro.flink.functions import Capture, TracedWindow

log = logging.getLogger("faro.flink")

_NO_EARLIEST, _NO_LATEST = TIME_HIGH, TIME_LOW - 1  # a pane with no event time yet

WindowFunctions: TypeAlias = (
    ProcessWindowFunction | WindowFunction | ProcessAllWindowFunction | AllWindowFunction
)
"""What ``aggregate()`` takes as its window function, on keyed and all-window streams."""


class TracedAggregate(NamedTuple):
    """What ``aggregate()`` takes, in its order, so ``windowed.aggregate(*traced,
    output_type=...)`` passes all three."""

    aggregate_function: AggregateFunction
    window_function: TracedFoldedWindow
    accumulator_type: TypeInformation | None


def folded_type(accumulator_type: TypeInformation | list | None) -> TypeInformation | None:
    """The state type of the traced accumulator: the user's, a count and the pane's
    earliest and latest event time. ``None`` (the user's accumulator is pickled)
    stays ``None``; a list is a row's field types, as ``aggregate()`` reads it."""
    if accumulator_type is None:
        return None
    if isinstance(accumulator_type, list):
        accumulator_type = Types.ROW(accumulator_type)
    return Types.TUPLE([accumulator_type, Types.LONG(), Types.LONG(), Types.LONG()])


class Reduction(AggregateFunction):
    """A reduce function as an AggregateFunction, so that a window that reduces is
    traced as one that aggregates: the accumulator is the value reduced so far, and
    the result. It is None only before the pane's first element, and never stored
    so: Flink adds an element to a new accumulator before it keeps it."""

    def __init__(self, reduce: Callable[[Any, Any], Any]):
        self._reduce = reduce

    def create_accumulator(self) -> Any:
        return None

    def add(self, value: Any, accumulator: Any) -> Any:
        return value if accumulator is None else self._reduce(accumulator, value)

    def get_result(self, accumulator: Any) -> Any:
        return accumulator

    def merge(self, a: Any, b: Any) -> Any:
        if a is None or b is None:
            return b if a is None else a
        return self._reduce(a, b)


class TracedAggregateFunction(AggregateFunction):
    """The user's AggregateFunction, its accumulator carried as ``(accumulator,
    count, earliest, latest)``. Flink never opens an AggregateFunction, so the
    event-time reader is built on the first element."""

    def __init__(self, fn: AggregateFunction, event_time: Extractor | None, operator_id: str):
        self._fn = fn
        self._event_time = event_time
        self._operator_id = operator_id
        self._read: Any = None

    def create_accumulator(self) -> tuple[Any, int, int, int]:
        return (self._fn.create_accumulator(), 0, _NO_EARLIEST, _NO_LATEST)

    def add(self, value: Any, accumulator: tuple[Any, int, int, int]) -> tuple[Any, int, int, int]:
        inner, count, earliest, latest = accumulator
        inner = self._fn.add(value, inner)
        if self._event_time is not None:
            if self._read is None:
                failures = FailureLog(f"faro operator {self._operator_id!r}", log)
                self._read = event_time_reader(self._event_time, failures)
            at = self._read(value)
            if at is not None and TIME_LOW <= at < TIME_HIGH:
                earliest, latest = min(earliest, at), max(latest, at)
        return (inner, count + 1, earliest, latest)

    def get_result(self, accumulator: tuple[Any, int, int, int]) -> tuple[Any, int, int, int]:
        inner, count, earliest, latest = accumulator
        return (self._fn.get_result(inner), count, earliest, latest)

    def merge(
        self, a: tuple[Any, int, int, int], b: tuple[Any, int, int, int]
    ) -> tuple[Any, int, int, int]:
        """Merging windows (sessions) merge their panes' accumulators."""
        return (self._fn.merge(a[0], b[0]), a[1] + b[1], min(a[2], b[2]), max(a[3], b[3]))


class TracedFoldedWindow(TracedWindow, ProcessWindowFunction, ProcessAllWindowFunction):
    """The window function of a traced ``aggregate()``: the pane's folded count and
    event-time range are its inputs, what the user's window function emits its
    outputs (or the aggregate's result, without one). It is both kinds of
    process window function, so one trace fits keyed and ``window_all`` windows
    alike: PyFlink calls it with the key on a keyed stream and without on the
    other."""

    def __init__(self, fn: WindowFunctions | None, capture: Capture):
        self._setup(fn, capture)

    def process(self, *args: Any) -> Iterator[Any]:
        key, context, elements = args if len(args) == 3 else (None, *args)
        return self._fired(context, lambda rec: self._emit(key, context, _unfolded(rec, elements)))

    def _emit(self, key: Any, context: Any, results: list[Any]) -> Iterable[Any] | None:
        fn = self._fn
        if fn is None:
            return results
        if isinstance(fn, ProcessWindowFunction):
            return fn.process(key, context, results)
        if isinstance(fn, ProcessAllWindowFunction):
            return fn.process(context, results)
        if isinstance(fn, WindowFunction):
            return fn.apply(key, context.window(), results)
        return fn.apply(context.window(), results)  # an AllWindowFunction

    def clear(self, context: Any) -> None:
        if isinstance(self._fn, (ProcessWindowFunction, ProcessAllWindowFunction)):
            self._fn.clear(context)


def _unfolded(rec: OperatorRecorder, elements: Iterable[Any]) -> list[Any]:
    """The user's results of the fire (one: the pane's), its count and event-time
    range counted as inputs."""
    results = []
    for result, count, earliest, latest in elements:
        rec.record_folded(count, earliest, latest)
        results.append(result)
    return results
