import dataclasses
import pickle
import threading
import time

from faro import (
    AsyncCaptureEventSink,
    CaptureEvent,
    EventType,
    FaroConfig,
    FaroFeatureConfig,
    OperatorRecorder,
    OperatorType,
)
from tests.support import ListSink, wait_for


def _event(i: int, event_type: EventType = EventType.ENTITY) -> CaptureEvent:
    return CaptureEvent(f"e{i}", event_type, "p", "op", OperatorType.MAP, i, entity_id=f"u{i}")


class GatedSink(ListSink):
    """Blocks in emit until the gate opens: a destination that is slow right now."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.entered = threading.Event()

    def emit(self, event: CaptureEvent) -> None:
        self.entered.set()
        self.gate.wait(30)
        super().emit(event)


def test_every_event_is_delivered_in_order_and_flush_waits_for_it() -> None:
    inner = ListSink()
    sink = AsyncCaptureEventSink(lambda: inner, 5000, batch_size=64)
    events = [_event(i) for i in range(3000)]
    for e in events:
        sink.emit(e)
    assert sink.flush(10)
    assert inner.events == events
    sink.close()
    assert inner.closed and sink.dropped == 0 and sink.delivered == 3000


def test_overflow_is_dropped_counted_and_flagged_on_the_next_aggregate() -> None:
    inner = GatedSink()
    capacity, overflow = 100, 37
    sink = AsyncCaptureEventSink(lambda: inner, capacity, batch_size=1, interval_ms=5)
    sink.emit(_event(-1))
    assert inner.entered.wait(5)  # the worker is now stuck inside the destination
    for i in range(capacity + overflow):
        sink.emit(_event(i))
    sink.emit(_event(1000, EventType.AGGREGATE))  # admitted from the reserve above capacity
    assert sink.dropped == overflow
    inner.gate.set()
    sink.emit(_event(1001, EventType.AGGREGATE))
    assert sink.flush(10)
    aggregates = inner.of_type(EventType.AGGREGATE)
    assert [(a.event_id, a.capture_drop_since_last, a.dropped_count) for a in aggregates] == [
        ("e1000", True, overflow),
        ("e1001", False, 0),
    ]
    assert len(inner.of_type(EventType.ENTITY)) == 1 + capacity
    sink.close()


def test_flush_and_close_honour_their_timeout_when_the_destination_hangs() -> None:
    inner = GatedSink()
    sink = AsyncCaptureEventSink(lambda: inner, 10, batch_size=1)
    sink.emit(_event(0))
    assert inner.entered.wait(5)
    start = time.monotonic()
    assert sink.flush(0.2) is False
    sink.close(timeout=0.3)
    assert time.monotonic() - start < 1.5
    sink.emit(_event(1))  # after close: dropped, never raised
    assert sink.dropped == 1
    inner.gate.set()


def test_a_factory_that_fails_costs_the_pipeline_nothing() -> None:
    def broken() -> ListSink:
        raise ConnectionError("cannot reach destination")

    sink = AsyncCaptureEventSink(broken, 10)
    for i in range(50):
        sink.emit(_event(i))
    assert wait_for(lambda: sink.failures.count >= 1)
    assert sink.flush(1) is False
    sink.close(timeout=1)


def test_a_sink_that_raises_is_counted_not_propagated() -> None:
    class Raising(ListSink):
        def emit(self, event: CaptureEvent) -> None:
            raise RuntimeError("boom")

    sink = AsyncCaptureEventSink(Raising, 100, batch_size=10)
    for i in range(30):
        sink.emit(_event(i))
    sink.flush(5)
    assert sink.failures.count == 3 and sink.delivered == 0
    sink.close()


def test_wrap_returns_a_picklable_factory() -> None:
    factory = AsyncCaptureEventSink.wrap(ListSink, 123, batch_size=7)
    built = pickle.loads(pickle.dumps(factory))()
    try:
        assert isinstance(built, AsyncCaptureEventSink)
        assert (built.capacity, built._batch_size) == (123, 7)
    finally:
        built.close()


def _recorder(sink: object) -> OperatorRecorder:
    config = FaroConfig(features={"amount": FaroFeatureConfig(entity_key="user",
                                                              feature_value="amount")})  # fmt: skip
    return OperatorRecorder("p", "op", OperatorType.MAP, config, sink, clock=lambda: 42)  # type: ignore[arg-type]


def test_deferred_entity_events_arrive_as_the_recorder_would_have_built_them() -> None:
    # The recorder hands ENTITY events to the async sink unbuilt; the worker
    # builds them. What arrives must equal what a plain sink receives, in order.
    direct, inner = ListSink(), ListSink()
    sink = AsyncCaptureEventSink(lambda: inner, 10_000, batch_size=64)
    recorders = [_recorder(direct), _recorder(sink)]
    for i in range(2000):
        for recorder in recorders:
            recorder.record_in({"user": f"u{i % 7}", "amount": i}, 1_000 + i)
            if i % 100 == 99:
                recorder.flush()
    assert sink.flush(10)
    sink.close()
    assert len(inner.events) == len(direct.events) == 2000 + 20

    def without_id(e: CaptureEvent) -> CaptureEvent:
        return dataclasses.replace(e, event_id="")

    assert [without_id(e) for e in inner.events] == [without_id(e) for e in direct.events]
    assert len({e.event_id for e in inner.events}) == len(inner.events)


class _Numbered:
    """A draft template whose drafts are ``(template, i)``."""

    def build(self, i: int) -> CaptureEvent:
        return _event(i)


class _Unbuildable:
    def build(self, i: int) -> CaptureEvent:
        raise ValueError("cannot build")


def test_deferred_events_overflow_like_any_entity_and_a_failing_build_is_counted() -> None:
    inner = GatedSink()
    sink = AsyncCaptureEventSink(lambda: inner, 10, batch_size=1, interval_ms=5)
    sink.emit(_event(-1))
    assert inner.entered.wait(5)
    for i in range(15):
        sink.emit_deferred((_Numbered(), i))
    assert sink.dropped == 5
    sink.emit_deferred((_Unbuildable(), 99))
    assert sink.dropped == 6  # still full: dropped before it could fail
    inner.gate.set()
    assert sink.flush(10)
    sink.emit_deferred((_Unbuildable(), 99))
    sink.emit_deferred((_Numbered(), 100))
    assert sink.flush(10)
    assert [e.event_id for e in inner.events] == [f"e{i}" for i in [-1, *range(10), 100]]
    assert sink.failures.count == 1
    sink.close()
