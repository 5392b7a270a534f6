"""The wrappers' pass-through paths that a bounded mini-cluster job cannot reach.

PyFlink (2.3, process mode) fires no event-time timers of a KeyedProcessFunction
at the end of bounded input, wrapped or not, so ``on_timer`` is driven directly
here, on the real wrapper, with a minimal context object.
"""

import pytest
from pyflink.datastream import OutputTag
from pyflink.datastream.time_domain import TimeDomain

from faro import EventType, FaroConfig, FaroFeatureConfig
from faro.flink import FaroFlink
from tests.flink.jobs import ORDER_TYPE, BigOrders
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
