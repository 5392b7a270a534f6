import io

from faro import StdoutCaptureEventSink
from faro.core.json_codec import from_json
from tests.sinks.events import mixed_events


def test_one_json_line_per_event(capsys) -> None:
    events = mixed_events(60)
    sink = StdoutCaptureEventSink()
    for e in events:
        sink.emit(e)
    sink.close()
    lines = capsys.readouterr().out.splitlines()
    assert [from_json(line)[0] for line in lines] == events


def test_a_closed_stream_is_counted_not_raised() -> None:
    stream = io.StringIO()
    stream.close()
    sink = StdoutCaptureEventSink(stream)
    sink.emit(mixed_events(1)[0])
    sink.emit(mixed_events(1)[0])
    assert sink.dropped == 2 and sink.failures.count == 2 and sink.emitted == 0
