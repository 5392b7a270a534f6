"""What FaroFlink says when a trace is built."""

import logging

import pytest

from faro import FaroConfig, FaroFeatureConfig
from faro.flink import FaroFlink
from tests.flink.jobs import (
    BigOrders,
    KeyedOrdersAndRefunds,
    OrderAggFn,
    OrdersAndRefunds,
    OrdersOrRefunds,
    RevenueAgg,
    SplitLarge,
)
from tests.support import ListSink


def _config(side: str) -> FaroConfig:
    spec = FaroFeatureConfig(entity_key=lambda o: o[4], feature_value=lambda o: o[2], on=side)
    return FaroConfig(features={"amount": spec})


def _faro() -> FaroFlink:
    sink = ListSink()
    return FaroFlink("p", lambda: sink)


@pytest.mark.parametrize(
    ("build", "warns"),
    [
        (lambda f, side: f.window_trace(OrderAggFn(), _config(side), "w"), {"input"}),
        (lambda f, side: f.map_trace(lambda o: o, _config(side), "m"), {"input", "output"}),
        (lambda f, side: f.filter_trace(lambda o: True, _config(side), "f"), {"input", "output"}),
        (lambda f, side: f.flat_map_trace(lambda o: [o], _config(side), "fm"), {"input", "output"}),
        (lambda f, side: f.process_trace(BigOrders(), _config(side), "p"), set()),
        # a function of two streams reads features from its output only (below)
        (lambda f, _: f.co_process_trace(OrdersAndRefunds(), _config("output"), "j"), set()),
    ],
)
@pytest.mark.parametrize("side", ["input", "output"])
def test_entity_events_without_a_record_timestamp_are_warned_about(caplog, build, warns, side):
    """Records whose timestamps PyFlink does not hand the function would all get one
    trace id per entity; a process function reads them and a time window stamps its
    results, so those need no event_time=."""
    with caplog.at_level(logging.WARNING, logger="faro.flink"):
        build(_faro(), side)
    warned = [r.getMessage() for r in caplog.records if "event_time=" in r.getMessage()]
    if side in warns:
        [message] = warned
        assert "['amount']" in message and "share one trace id" in message
    else:
        assert warned == []


def test_an_event_time_extractor_or_aggregate_only_config_is_not_warned_about(caplog):
    with caplog.at_level(logging.WARNING, logger="faro.flink"):
        _faro().map_trace(lambda o: o, _config("input"), "m", event_time=lambda o: o[3])
        _faro().map_trace(lambda o: o, FaroConfig(features=["amount"]), "m2")
    assert caplog.records == []


@pytest.mark.parametrize(
    ("method", "fn"),
    [
        ("co_process_trace", OrdersAndRefunds()),
        ("co_process_trace", KeyedOrdersAndRefunds()),
        ("co_map_trace", OrdersOrRefunds()),
        ("co_flat_map_trace", SplitLarge()),
    ],
)
def test_a_function_of_two_streams_reads_no_feature_from_its_inputs(method, fn) -> None:
    trace = getattr(_faro(), method)
    with pytest.raises(ValueError, match=r"feature 'amount' is read from the input.*on='output'"):
        trace(fn, _config("input"), "j")
    bare_name = FaroConfig(features=["amount"])  # reads the outputs' field of that name
    assert trace(fn, bare_name, "j")


def test_each_trace_takes_its_kind_of_function_and_says_which_to_use_instead() -> None:
    with pytest.raises(TypeError, match=r"not OrdersAndRefunds: for a function of two inputs "
                                        r"use co_process_trace"):  # fmt: skip
        _faro().process_trace(OrdersAndRefunds())
    with pytest.raises(TypeError, match=r"KeyedCoProcessFunction or a CoProcessFunction, not "
                                        r"BigOrders"):  # fmt: skip
        _faro().co_process_trace(BigOrders())
    with pytest.raises(TypeError, match=r"co_map_trace takes a CoMapFunction, not SplitLarge"):
        _faro().co_map_trace(SplitLarge())
    with pytest.raises(TypeError, match=r"takes a CoFlatMapFunction, not OrdersOrRefunds"):
        _faro().co_flat_map_trace(OrdersOrRefunds())
    with pytest.raises(TypeError, match=r"window_trace takes a ProcessWindowFunction or a "
                                        r"WindowFunction .*, not RevenueAgg \(for an "
                                        r"AggregateFunction, use aggregate_trace"):  # fmt: skip
        _faro().window_trace(RevenueAgg())
    with pytest.raises(TypeError, match=r"for a reduce function, reduce_trace"):
        _faro().aggregate_trace(lambda a, b: a)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"reduce_trace takes a ReduceFunction or a function of "
                                        r"two values, not str"):  # fmt: skip
        _faro().reduce_trace("revenue", None, "w")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"a lambda has no name to use as operator_id"):
        _faro().reduce_trace(lambda a, b: a)


def test_a_function_of_two_streams_is_a_join_unless_told_otherwise() -> None:
    def capture(traced):
        return traced._capture.operator_type, traced._capture.operator_id

    faro = _faro()
    assert capture(faro.co_process_trace(OrdersAndRefunds())) == ("JOIN", "OrdersAndRefunds")
    assert capture(faro.co_process_trace(OrdersAndRefunds(), operator_type="PROCESS")) == (
        "PROCESS", "OrdersAndRefunds"
    )
    with pytest.raises(ValueError, match=r"operator_type must be one of .*JOIN.*got 'JOINT'"):
        faro.co_process_trace(OrdersAndRefunds(), operator_type="JOINT")
