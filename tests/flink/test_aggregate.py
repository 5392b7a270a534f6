"""The incremental window's accumulator, outside Flink: what a job cannot pin down
(merging, which PyFlink's process mode never asks of an AggregateFunction, and
extractor failures), and what aggregate_trace refuses."""

import random

import pytest
from pyflink.common import Types

from faro import FaroConfig, FaroFeatureConfig
from faro.flink import FaroFlink
from faro.flink.aggregate import TracedAggregate, folded_type
from tests.flink.jobs import MerchantTotals, OrderAggFn, RevenueAgg, orders
from tests.support import ListSink


def _fold(agg, records):
    acc = agg.create_accumulator()
    for r in records:
        acc = agg.add(r, acc)
    return acc


def test_merged_accumulators_hold_both_panes_counts_and_time_range() -> None:
    data = [o.as_tuple() for o in orders(200)]
    random.Random(5).shuffle(data)
    agg = FaroFlink("p", ListSink).aggregate_trace(RevenueAgg(), event_time=lambda o: o[3])
    fn = agg.aggregate_function
    left, right = _fold(fn, data[:70]), _fold(fn, data[70:])
    (revenue, orders_folded), count, earliest, latest = fn.get_result(fn.merge(left, right))
    assert revenue == pytest.approx(sum(o[2] for o in data)) and orders_folded == len(data)
    assert (count, earliest, latest) == (
        len(data), min(o[3] for o in data), max(o[3] for o in data)
    )
    # a pane no element with a time reached leaves the other's range alone
    assert fn.merge(fn.create_accumulator(), left)[1:] == left[1:]


def test_an_event_time_that_cannot_be_read_still_counts_the_element() -> None:
    def stamp(order):
        if order[2] < 50:
            raise ValueError("no time on small orders")
        return order[3]

    data = [o.as_tuple() for o in orders(100)]
    fn = FaroFlink("p", ListSink).aggregate_trace(RevenueAgg(), event_time=stamp)[0]
    _result, count, earliest, latest = fn.get_result(_fold(fn, data))
    timed = [o[3] for o in data if o[2] >= 50]
    assert (count, earliest, latest) == (len(data), min(timed), max(timed))


def test_the_accumulator_type_wraps_the_one_given() -> None:
    assert folded_type(None) is None  # pickled, as aggregate() does without one
    given = Types.TUPLE([Types.DOUBLE(), Types.LONG()])
    assert folded_type(given) == Types.TUPLE([given, Types.LONG(), Types.LONG(), Types.LONG()])
    as_list = folded_type([Types.DOUBLE(), Types.LONG()])  # a list: a row of those fields
    assert as_list == Types.TUPLE(
        [Types.ROW([Types.DOUBLE(), Types.LONG()]), Types.LONG(), Types.LONG(), Types.LONG()]
    )


def test_the_trace_unpacks_into_aggregates_arguments() -> None:
    agg = FaroFlink("p", ListSink).aggregate_trace(
        RevenueAgg(), window_function=MerchantTotals(), accumulator_type=Types.LONG()
    )
    assert isinstance(agg, TracedAggregate)
    assert agg._fields == ("aggregate_function", "window_function", "accumulator_type")
    assert agg.window_function._capture.operator_id == "RevenueAgg"  # the default id


def test_aggregate_trace_refuses_what_it_cannot_read() -> None:
    faro = FaroFlink("p", ListSink)
    alone = r"takes an AggregateFunction, not OrderAggFn \(for a ProcessWindowFunction alone"
    with pytest.raises(TypeError, match=alone):
        faro.aggregate_trace(OrderAggFn())
    with pytest.raises(TypeError, match=r"ProcessWindowFunction or a WindowFunction \(or, after "):
        faro.aggregate_trace(RevenueAgg(), window_function="sum")
    on_input = FaroConfig(features={"amount": FaroFeatureConfig(feature_value=lambda o: o[2])})
    folded = r"'amount' is read from the input, but a window that aggregates .*on='output'"
    with pytest.raises(ValueError, match=folded):
        faro.aggregate_trace(RevenueAgg(), on_input)
