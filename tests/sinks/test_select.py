import pickle

import pytest

from faro import (
    AsyncCaptureEventSink,
    DeltaCaptureEventSink,
    HttpCaptureEventSink,
    KafkaCaptureEventSink,
)
from faro.sinks import SINK_KINDS, sink_factory


def test_every_kind_builds_a_picklable_factory_of_the_right_sink() -> None:
    built = {}
    for kind in SINK_KINDS:
        factory = sink_factory(
            kind, bootstrap_servers="127.0.0.1:1", url="http://127.0.0.1:1/ingest", path="/nowhere"
        )
        sink = pickle.loads(pickle.dumps(factory))()
        built[kind] = sink
    try:
        assert isinstance(built["kafka"], KafkaCaptureEventSink)
        assert isinstance(built["http"], HttpCaptureEventSink)
        assert isinstance(built["async-kafka"], AsyncCaptureEventSink)
        assert isinstance(built["delta"], DeltaCaptureEventSink)
    finally:
        for sink in built.values():
            if isinstance(sink, AsyncCaptureEventSink):
                sink.close(timeout=0.5)


@pytest.mark.parametrize(
    ("kind", "kwargs", "message"),
    [
        ("carrier-pigeon", {}, "sink must be one of stdout, kafka"),
        ("async-kafka", {}, "needs bootstrap servers"),
        ("http", {}, "needs a URL"),
        ("delta", {}, "needs a table path"),
    ],
)
def test_missing_settings_say_what_to_pass(kind: str, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        sink_factory(kind, **kwargs)
