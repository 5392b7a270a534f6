"""The wrappers' pass-through paths that a bounded mini-cluster job cannot reach.

PyFlink (2.3, process mode) fires no event-time timers of a KeyedProcessFunction
at the end of bounded input, wrapped or not, so ``on_timer`` is driven directly
here, on the real wrapper, with a minimal context object.
"""

from pyflink.datastream import OutputTag

from faro import EventType, FaroConfig
from faro.flink import FaroFlink
from tests.flink.jobs import ORDER_TYPE, BigOrders
from tests.support import ListSink

LATE = OutputTag("late", ORDER_TYPE)


class _Ctx:
    def __init__(self, key: str):
        self._key = key

    def get_current_key(self) -> str:
        return self._key


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
