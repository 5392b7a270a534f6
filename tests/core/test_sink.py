import pytest

from faro import StdoutCaptureEventSink
from faro.core.failures import FailureLog
from faro.core.sink import build_sink, check_factory
from tests.support import ListSink


def test_factories_and_sink_classes_are_accepted() -> None:
    factory = StdoutCaptureEventSink.factory()
    assert check_factory(factory) is factory
    assert check_factory(ListSink) is ListSink


@pytest.mark.parametrize("not_a_factory", [ListSink(), "http://localhost:9000", None])
def test_a_built_sink_or_anything_else_is_rejected_with_the_fix(not_a_factory: object) -> None:
    with pytest.raises(TypeError, match=r"pass a sink factory, not a sink.*\.factory\(\.\.\.\)"):
        check_factory(not_a_factory)


def test_a_failing_factory_yields_a_sink_that_discards(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    def broken() -> ListSink:
        raise ConnectionError("no route")

    failures = FailureLog("test", logging.getLogger("test"))
    sink = build_sink(broken, failures)
    sink.emit(None)  # type: ignore[arg-type]
    assert sink.flush(1) is False
    assert failures.count == 1 and "no route" in caplog.text
