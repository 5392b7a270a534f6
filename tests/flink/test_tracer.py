"""What FaroFlink says when a trace is built."""

import logging

import pytest

from faro import FaroConfig, FaroFeatureConfig
from faro.flink import FaroFlink
from tests.flink.jobs import BigOrders, OrderAggFn
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
