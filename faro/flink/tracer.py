"""FaroFlink: the entry point for instrumenting a PyFlink job."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable
from typing import Any

from pyflink.common.typeinfo import TypeInformation
from pyflink.datastream.functions import (
    AggregateFunction,
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
    ReduceFunction,
    WindowFunction,
)

from faro.core.config import Extractor, FaroConfig, FaroFeatureConfig
from faro.core.events import OperatorType, parse_enum
from faro.core.sink import SinkFactory, check_factory
from faro.flink.aggregate import (
    Reduction,
    TracedAggregate,
    TracedAggregateFunction,
    TracedFoldedWindow,
    WindowFunctions,
    folded_type,
)
from faro.flink.functions import (
    Capture,
    TracedAllWindowFunction,
    TracedAppliedWindow,
    TracedBroadcastProcessFunction,
    TracedCoFlatMapFunction,
    TracedCoMapFunction,
    TracedCoProcessFunction,
    TracedFilterFunction,
    TracedFlatMapFunction,
    TracedKeyedBroadcastProcessFunction,
    TracedKeyedCoProcessFunction,
    TracedKeyedProcessFunction,
    TracedLateRecords,
    TracedMapFunction,
    TracedProcessFunction,
    TracedWindow,
    TracedWindowFunction,
    method_of,
)

log = logging.getLogger("faro.flink")


class FaroFlink:
    """Wraps PyFlink functions so they emit CaptureEvents for one pipeline.

    ``sink`` is a factory (``KafkaCaptureEventSink.factory(...)``,
    ``AsyncCaptureEventSink.wrap(...)``): each parallel instance of each traced
    function builds its own sink in ``open()`` and flushes and closes it in
    ``close()``. Traced functions compute exactly what the wrapped ones do.

    ``flush_interval`` (seconds of processing time) paces the AGGREGATE events
    of per-record operators (process, map, filter, flat_map); window
    operators emit one per window fire instead.
    """

    def __init__(self, pipeline_id: str, sink: SinkFactory, *, flush_interval: float = 10.0):
        if not pipeline_id:
            raise ValueError("pipeline_id must be a non-empty string such as 'order-pipeline'")
        if flush_interval <= 0:
            raise ValueError(f"flush_interval is in seconds and must be > 0, got {flush_interval}")
        self.pipeline_id = pipeline_id
        self.sink_factory = check_factory(sink)
        self.flush_interval = flush_interval

    def window_trace(
        self,
        fn: WindowFunctions,
        config: FaroConfig | None = None,
        operator_id: str | None = None,
        *,
        event_time: Extractor | None = None,
    ) -> ProcessWindowFunction | ProcessAllWindowFunction:
        """One AGGREGATE event per window fire: pane size, outputs, window bounds,
        watermark, feature statistics.

        PyFlink hands window functions the elements without their timestamps;
        pass ``event_time`` (the field or function your TimestampAssigner
        reads) to get the pane's event-time range, and for ENTITY features of
        the input, one trace id per record (without it, one per entity, and a
        warning says so). The window's results carry its last millisecond as
        their event time, as Flink stamps them. Late elements never reach a
        window function, so ``late_count`` is None in these events: route them
        to a side output and count them there with :meth:`late_trace`.

        A ProcessAllWindowFunction (``stream.window_all(...).process(...)``) is
        traced the same way, except that PyFlink hands it no watermark. So is a
        WindowFunction (or AllWindowFunction), for ``.apply(traced)``, which hands
        it no watermark either: ``.process(traced)`` computes the same and gives
        the trace the watermark.
        """
        traced: type[TracedWindowFunction | TracedAllWindowFunction | TracedAppliedWindow]
        if isinstance(fn, ProcessWindowFunction):
            traced = TracedWindowFunction
        elif isinstance(fn, ProcessAllWindowFunction):
            traced = TracedAllWindowFunction
        elif isinstance(fn, (WindowFunction, AllWindowFunction)):
            traced = TracedAppliedWindow
        else:
            raise TypeError(
                "window_trace takes a ProcessWindowFunction or a WindowFunction (after "
                "window_all, their all-window kinds), not "
                f"{type(fn).__name__} (for an AggregateFunction, use aggregate_trace)"
            )
        return traced(
            fn, self._capture(fn, config, operator_id, OperatorType.WINDOW, event_time, False)
        )

    def late_trace(
        self,
        window: ProcessWindowFunction | TracedAggregate,
        fn: MapFunction | Callable[[Any], Any] | None = None,
    ) -> MapFunction:
        """Counts a window's late records as that window operator's own.

        ``window`` is what :meth:`window_trace`, :meth:`aggregate_trace` or
        :meth:`reduce_trace` returned.
        Map the window's late-data side output through the result::

            late = OutputTag("late-orders", order_type())  # a type object of its own
            agg = faro.window_trace(OrderAgg(), config, "order-agg-window")
            sums = keyed.window(...).side_output_late_data(late).process(agg, sum_type)
            sums.get_side_output(late).map(faro.late_trace(agg), order_type())

        Each late record counts as an input of the window and as late (never as
        an output), in AGGREGATE events of the window's operator id without
        window bounds, so the operator's late rate, its funnel hand-off and its
        features' health include the records Flink kept out of every pane. The
        records pass on unchanged (or through ``fn``, a map function of your
        own). As with :meth:`map_trace`, counts are sent once ``flush_interval``
        has passed, with the next late record, or when the job ends.

        PyFlink 2.x cannot pickle a window's late-data tag whose type object
        the job already used, hence ``order_type()``: a fresh one for the tag.
        """
        if isinstance(window, TracedAggregate):
            window = window.window_function
        if not isinstance(window, TracedWindow):
            raise TypeError(
                "late_trace takes what window_trace, aggregate_trace or reduce_trace returned "
                f"(agg = faro.window_trace(...); faro.late_trace(agg)), not {type(window).__name__}"
            )
        names = window._capture.config.feature_names
        # the window's feature names, so its features' health counts these records; no
        # extractors: a late record holds none of the window's results
        config = FaroConfig(features={name: FaroFeatureConfig() for name in names})
        return TracedLateRecords(
            fn, dataclasses.replace(window._capture, config=config, observes_late=True)
        )

    def aggregate_trace(
        self,
        fn: AggregateFunction,
        config: FaroConfig | None = None,
        operator_id: str | None = None,
        *,
        window_function: WindowFunctions | None = None,
        accumulator_type: TypeInformation | list | None = None,
        event_time: Extractor | None = None,
    ) -> TracedAggregate:
        """A window that aggregates incrementally, ``windowed.aggregate(fn,
        window_function, accumulator_type)``: one AGGREGATE event per window fire,
        as :meth:`window_trace` reports, its inputs the elements folded into the
        pane. Pass what you would pass to ``aggregate()``, and pass it the result::

            agg = faro.aggregate_trace(AverageAmount(), config, "avg-amount-window",
                                       accumulator_type=Types.TUPLE([Types.DOUBLE(), Types.LONG()]),
                                       event_time="ts")
            averages = keyed.window(...).aggregate(*agg, output_type=Types.DOUBLE())

        The pane's count and event-time range are folded into the accumulator
        beside yours, so ``agg.accumulator_type`` wraps the one you give. The
        elements are gone by the time the window fires, so features are read from
        the window's results (``on="output"``, as bare names are).
        """
        if not isinstance(fn, AggregateFunction):
            raise TypeError(
                f"aggregate_trace takes an AggregateFunction, not {type(fn).__name__} "
                "(for a ProcessWindowFunction alone, use window_trace; for a reduce "
                "function, reduce_trace)"
            )
        return self._folded(
            fn, fn, config, operator_id, window_function, accumulator_type, event_time
        )

    def reduce_trace(
        self,
        fn: ReduceFunction | Callable[[Any, Any], Any],
        config: FaroConfig | None = None,
        operator_id: str | None = None,
        *,
        value_type: TypeInformation | list | None = None,
        window_function: WindowFunctions | None = None,
        event_time: Extractor | None = None,
    ) -> TracedAggregate:
        """A window that reduces, ``windowed.reduce(fn, window_function)``, traced as
        the same reduction through ``aggregate()`` (a window function sees a
        reduction's running value only, so the pane's count has to ride in its
        state, which ``reduce()`` keeps in the values' own type)::

            totals = faro.reduce_trace(lambda a, b: (a[0], a[1] + b[1]), config,
                                       "revenue-window", value_type=REVENUE)
            keyed.window(...).aggregate(*totals, output_type=REVENUE)

        ``value_type``: the type of the values reduced, which is what ``reduce()``
        emits without a window function (None: the state is pickled). The results
        are those of ``reduce()``; each fire is reported as :meth:`aggregate_trace`
        reports it."""
        if not callable(fn) and not isinstance(fn, ReduceFunction):
            raise TypeError(
                f"reduce_trace takes a ReduceFunction or a function of two values, "
                f"not {type(fn).__name__}"
            )
        return self._folded(
            Reduction(method_of(fn, "reduce")), fn, config, operator_id, window_function,
            value_type, event_time,
        )  # fmt: skip

    def _folded(
        self,
        fn: AggregateFunction,
        named_after: Any,
        config: FaroConfig | None,
        operator_id: str | None,
        window_function: WindowFunctions | None,
        accumulator_type: TypeInformation | list | None,
        event_time: Extractor | None,
    ) -> TracedAggregate:
        """The traced ``aggregate()`` arguments of a window that folds its elements
        with ``fn``; a default operator id is ``named_after``'s name."""
        if window_function is not None and not isinstance(window_function, WindowFunctions):
            raise TypeError(
                "window_function must be a ProcessWindowFunction or a WindowFunction (or, "
                "after window_all, a ProcessAllWindowFunction or an AllWindowFunction), "
                f"not {type(window_function).__name__}"
            )
        _outputs_only(
            config,
            "a window that aggregates incrementally hands on one folded value per pane",
        )
        capture = self._capture(
            named_after, config, operator_id, OperatorType.WINDOW, event_time, False
        )
        return TracedAggregate(
            TracedAggregateFunction(fn, event_time, capture.operator_id),
            TracedFoldedWindow(window_function, capture),
            folded_type(accumulator_type),
        )

    def process_trace(
        self,
        fn: KeyedProcessFunction | ProcessFunction,
        config: FaroConfig | None = None,
        operator_id: str | None = None,
        *,
        event_time: Extractor | None = None,
    ) -> KeyedProcessFunction | ProcessFunction:
        """Per-record counts using each element's timestamp; a record below the
        current watermark counts as late. Timers, state and side outputs pass
        through; records emitted from ``on_timer`` count as outputs. Takes a
        KeyedProcessFunction (``keyed.process``) or a ProcessFunction
        (``stream.process``) and returns the same kind."""
        if isinstance(fn, KeyedProcessFunction):
            traced: type[TracedKeyedProcessFunction | TracedProcessFunction]
            traced = TracedKeyedProcessFunction
        elif isinstance(fn, ProcessFunction):
            traced = TracedProcessFunction
        else:
            raise TypeError(
                "process_trace takes a KeyedProcessFunction or a ProcessFunction, not "
                f"{type(fn).__name__}: for a function of two inputs use co_process_trace, "
                "for a map, filter or flat_map function map_trace, filter_trace or "
                "flat_map_trace"
            )
        return traced(
            fn, self._capture(fn, config, operator_id, OperatorType.PROCESS, event_time, True)
        )

    def co_process_trace(
        self,
        fn: KeyedCoProcessFunction | CoProcessFunction,
        config: FaroConfig | None = None,
        operator_id: str | None = None,
        *,
        operator_type: OperatorType | str = OperatorType.JOIN,
        event_time: Extractor | None = None,
    ) -> KeyedCoProcessFunction | CoProcessFunction:
        """A function of two connected streams (``a.connect(b).process(...)``, keyed
        or not), such as a join that enriches one stream with the latest record of
        the other: records of both inputs count as its inputs, each with its
        timestamp, and as late below the watermark (the older of the two inputs').
        What it emits counts as outputs, from timers too; side outputs pass
        uncounted. Features are read from the outputs only (``on="output"``): the
        two inputs have records of different shapes. To see the two inputs' counts
        apart, trace an operator on each of them upstream (``map_trace``)."""
        if isinstance(fn, KeyedCoProcessFunction):
            traced: type[TracedKeyedCoProcessFunction | TracedCoProcessFunction]
            traced = TracedKeyedCoProcessFunction
        elif isinstance(fn, CoProcessFunction):
            traced = TracedCoProcessFunction
        else:
            raise TypeError(
                "co_process_trace takes a KeyedCoProcessFunction or a CoProcessFunction, "
                f"not {type(fn).__name__}"
            )
        return traced(fn, self._two_inputs(fn, config, operator_id, operator_type, event_time))

    def broadcast_process_trace(
        self,
        fn: KeyedBroadcastProcessFunction | BroadcastProcessFunction,
        config: FaroConfig | None = None,
        operator_id: str | None = None,
        *,
        operator_type: OperatorType | str = OperatorType.PROCESS,
        event_time: Extractor | None = None,
    ) -> KeyedBroadcastProcessFunction | BroadcastProcessFunction:
        """A function of a stream connected with a broadcast stream
        (``stream.connect(rules.broadcast(descriptor)).process(...)``, keyed or not),
        such as one that filters or enriches records by rules or reference data
        broadcast to every parallel instance. The main stream's records are its
        inputs, with their timestamps, and late below the watermark; broadcast
        elements are not counted (each reaches every instance). What it emits counts
        as output, for broadcast elements and from timers too; side outputs pass
        uncounted. Features read from the input read the main stream's records."""
        if isinstance(fn, KeyedBroadcastProcessFunction):
            traced: type[TracedKeyedBroadcastProcessFunction | TracedBroadcastProcessFunction]
            traced = TracedKeyedBroadcastProcessFunction
        elif isinstance(fn, BroadcastProcessFunction):
            traced = TracedBroadcastProcessFunction
        else:
            raise TypeError(
                "broadcast_process_trace takes a KeyedBroadcastProcessFunction or a "
                f"BroadcastProcessFunction, not {type(fn).__name__}"
            )
        kind = parse_enum(OperatorType, operator_type, "operator_type")
        return traced(fn, self._capture(fn, config, operator_id, kind, event_time, True))

    def co_map_trace(
        self,
        fn: CoMapFunction,
        config: FaroConfig | None = None,
        operator_id: str | None = None,
        *,
        operator_type: OperatorType | str = OperatorType.MAP,
        event_time: Extractor | None = None,
    ) -> CoMapFunction:
        """A CoMapFunction of two connected streams (``a.connect(b).map(...)``): as
        :meth:`co_process_trace` counts them, but PyFlink hands a map no record's
        timestamp, so event times come from ``event_time`` (reading records of
        both inputs) and nothing counts as late."""
        if not isinstance(fn, CoMapFunction):
            raise TypeError(f"co_map_trace takes a CoMapFunction, not {type(fn).__name__}")
        capture = self._two_inputs(fn, config, operator_id, operator_type, event_time, False)
        return TracedCoMapFunction(fn, capture)

    def co_flat_map_trace(
        self,
        fn: CoFlatMapFunction,
        config: FaroConfig | None = None,
        operator_id: str | None = None,
        *,
        operator_type: OperatorType | str = OperatorType.FLAT_MAP,
        event_time: Extractor | None = None,
    ) -> CoFlatMapFunction:
        """A CoFlatMapFunction of two connected streams, as :meth:`co_map_trace`."""
        if not isinstance(fn, CoFlatMapFunction):
            raise TypeError(f"co_flat_map_trace takes a CoFlatMapFunction, not {type(fn).__name__}")
        capture = self._two_inputs(fn, config, operator_id, operator_type, event_time, False)
        return TracedCoFlatMapFunction(fn, capture)

    def map_trace(
        self,
        fn: MapFunction | Callable[[Any], Any],
        config: FaroConfig | None = None,
        operator_id: str | None = None,
        *,
        event_time: Extractor | None = None,
    ) -> MapFunction:
        return TracedMapFunction(
            fn, self._capture(fn, config, operator_id, OperatorType.MAP, event_time, False)
        )

    def filter_trace(
        self,
        fn: FilterFunction | Callable[[Any], bool],
        config: FaroConfig | None = None,
        operator_id: str | None = None,
        *,
        event_time: Extractor | None = None,
    ) -> FilterFunction:
        """Input and output counts give the filter ratio of this step of the funnel."""
        return TracedFilterFunction(
            fn, self._capture(fn, config, operator_id, OperatorType.FILTER, event_time, False)
        )

    def flat_map_trace(
        self,
        fn: FlatMapFunction | Callable[[Any], Iterable[Any]],
        config: FaroConfig | None = None,
        operator_id: str | None = None,
        *,
        event_time: Extractor | None = None,
    ) -> FlatMapFunction:
        return TracedFlatMapFunction(
            fn, self._capture(fn, config, operator_id, OperatorType.FLAT_MAP, event_time, False)
        )

    def _two_inputs(
        self,
        fn: Any,
        config: FaroConfig | None,
        operator_id: str | None,
        operator_type: OperatorType | str,
        event_time: Extractor | None,
        stamped: bool = True,
    ) -> Capture:
        """A Capture for a function of two connected streams, whose features are read
        from its output: its inputs hold records of different shapes."""
        _outputs_only(
            config,
            "a function of two connected streams has two inputs with records of different "
            "shapes",
        )
        kind = parse_enum(OperatorType, operator_type, "operator_type")
        return self._capture(fn, config, operator_id, kind, event_time, stamped)

    def _capture(
        self,
        fn: Any,
        config: FaroConfig | None,
        operator_id: str | None,
        operator_type: OperatorType,
        event_time: Extractor | None,
        observes_late: bool,
    ) -> Capture:
        config = config or FaroConfig()
        operator_id = operator_id or _default_operator_id(fn)
        if event_time is None:
            # only process functions see each record's timestamp (and so, late records)
            _warn_untimed_entities(operator_id, operator_type, config, stamped=observes_late)
        return Capture(
            pipeline_id=self.pipeline_id,
            operator_id=operator_id,
            operator_type=operator_type,
            config=config,
            sink_factory=self.sink_factory,
            flush_interval_s=self.flush_interval,
            event_time=event_time,
            observes_late=observes_late,
        )


def _outputs_only(config: FaroConfig | None, why: str) -> None:
    """Refuses features read from the input of an operator whose input records
    cannot be read: ``why`` says what keeps them from the wrapper."""
    for name, spec in (config.feature_specs if config else {}).items():
        if spec.feature_value is not None and spec.on == "input":
            raise ValueError(
                f"feature {name!r} is read from the input, but {why}: read it from the "
                "output (FaroFeatureConfig(..., on='output')), or trace an operator "
                "upstream on the input that carries it"
            )


def _warn_untimed_entities(
    operator_id: str, operator_type: OperatorType, config: FaroConfig, *, stamped: bool
) -> None:
    """ENTITY events without an event time share one trace id per entity, so a
    trace would mix an entity's records. A process function gets each record's
    timestamp (``stamped``) and a time window stamps its results; otherwise
    PyFlink hands the function records without their timestamps."""
    untimed = [
        name for name, spec in config.feature_specs.items()
        if spec.emits_entities and not stamped
        and (operator_type is not OperatorType.WINDOW or spec.on == "input")
    ]  # fmt: skip
    if untimed:
        log.warning(
            "faro: %s %r captures ENTITY events of %s without event_time=: PyFlink does not "
            "hand this function the records' timestamps, so all of one entity's events would "
            "share one trace id. Pass event_time= (the field or function your "
            "TimestampAssigner reads).",
            operator_type.value.lower(), operator_id, untimed,
        )  # fmt: skip


def _default_operator_id(fn: Any) -> str:
    name = getattr(fn, "__name__", None) or type(fn).__name__
    if name == "<lambda>":
        raise ValueError(
            "a lambda has no name to use as operator_id; pass operator_id='...' "
            "(the same id you give .uid() is a good choice)"
        )
    return name
