import json
import time

import pytest

from faro import AsyncCaptureEventSink, HttpCaptureEventSink
from faro.core.avro_codec import decode_container
from faro.core.json_codec import from_json
from tests.sinks.events import mixed_events
from tests.support import http_receiver, p99_emit_seconds, wait_for


@pytest.fixture(autouse=True)
def _no_linger(monkeypatch: pytest.MonkeyPatch) -> None:
    """Batch boundaries in these tests are exact; lingering has tests of its own."""
    monkeypatch.setenv("FARO_HTTP_LINGER_S", "3600")


@pytest.mark.parametrize("fmt", ["avro", "json"])
def test_every_event_arrives_in_batches(fmt: str) -> None:
    events = mixed_events(1234)
    with http_receiver() as rx:
        sink = HttpCaptureEventSink(
            f"{rx.url}/ingest", format=fmt, batch_size=500, bearer_token="s3cret"
        )
        for e in events:
            sink.emit(e)
        assert len(rx.requests) == 2  # two full batches went out as they filled
        assert sink.flush(5)
        sink.close()
    decode = decode_container if fmt == "avro" else from_json
    received = [e for r in rx.requests for e in decode(r.body)]
    assert received == events
    assert [len(decode(r.body)) for r in rx.requests] == [500, 500, 234]
    first = rx.requests[0]
    assert first.path == "/ingest"
    assert first.headers["Content-Type"] == f"application/{fmt}"
    assert first.headers["Content-Encoding"] == "gzip"
    assert first.headers["Authorization"] == "Bearer s3cret"
    assert sink.emitted == len(events) and sink.dropped == 0


def test_transient_5xx_is_retried_until_delivered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FARO_HTTP_BACKOFF_S", "0.01")
    events = mixed_events(10)
    with http_receiver(lambda n: 503 if n < 2 else 200) as rx:
        sink = HttpCaptureEventSink(rx.url, batch_size=100, max_retries=3)
        for e in events:
            sink.emit(e)
        assert sink.flush(5)
    assert len(rx.requests) == 3
    assert decode_container(rx.requests[-1].body) == events


def test_persistent_500_drops_and_counts_without_raising(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FARO_HTTP_BACKOFF_S", "0.01")
    with http_receiver(lambda n: 500) as rx:
        sink = HttpCaptureEventSink(rx.url, batch_size=10, max_retries=2)
        for e in mixed_events(25):
            sink.emit(e)
        assert sink.flush(5) is False
    assert sink.dropped == 25 and sink.emitted == 0
    assert len(rx.requests) == 3  # one batch tried 1 + 2 times; the rest dropped during cool-down


def test_client_errors_are_not_retried() -> None:
    with http_receiver(lambda n: 400) as rx:
        sink = HttpCaptureEventSink(rx.url, batch_size=5, max_retries=3)
        for e in mixed_events(10):
            sink.emit(e)
    assert len(rx.requests) == 2 and sink.dropped == 10


def test_a_hanging_endpoint_behind_the_async_wrapper_costs_emit_nothing() -> None:
    with http_receiver(lambda n: None) as rx:
        factory = HttpCaptureEventSink.factory(rx.url, batch_size=50, timeout=0.5, max_retries=0)
        sink = AsyncCaptureEventSink.wrap(factory, 1000)()
        p99 = p99_emit_seconds(sink, mixed_events(20_000))
        start = time.monotonic()
        sink.close(timeout=1)
        assert time.monotonic() - start < 2.5
    assert p99 < 0.001
    assert sink.dropped > 0


def test_unreachable_endpoint_is_counted() -> None:
    with http_receiver() as rx:
        url = rx.url
    sink = HttpCaptureEventSink(url, batch_size=5, max_retries=0)
    for e in mixed_events(5):
        sink.emit(e)
    assert sink.dropped == 5 and sink.failures.count == 1


def test_bad_url_fails_at_construction_with_the_expected_form() -> None:
    with pytest.raises(ValueError, match="http://host:port/path"):
        HttpCaptureEventSink("localhost:9000/ingest")
    with pytest.raises(ValueError, match="format must be 'avro' or 'json'"):
        HttpCaptureEventSink("http://localhost:9000", format="xml")


def test_json_body_uses_schema_field_names_and_epoch_millis() -> None:
    [event] = mixed_events(1)
    with http_receiver() as rx:
        sink = HttpCaptureEventSink(rx.url, format="json", compress=False)
        sink.emit(event)
        sink.flush(5)
    [body] = json.loads(rx.requests[0].body)
    assert body["processing_time"] == event.processing_time
    assert body["event_type"] == "ENTITY" and body["entity_id"] == event.entity_id


def test_a_partial_batch_goes_out_once_its_oldest_event_has_lingered() -> None:
    events = mixed_events(5)
    with http_receiver() as rx:
        sink = HttpCaptureEventSink(rx.url, batch_size=100, linger_s=0.3)
        for e in events[:3]:
            sink.emit(e)
        assert rx.requests == []
        time.sleep(0.35)
        sink.emit(events[3])  # the first event has now waited 0.35 s
        assert [decode_container(r.body) for r in rx.requests] == [events[:4]]
        sink.emit(events[4])  # starts a new batch, with a fresh clock
        assert len(rx.requests) == 1
        sink.close()
    assert decode_container(rx.requests[-1].body) == events[4:]


def test_the_async_wrapper_flushes_a_stream_that_went_quiet() -> None:
    events = mixed_events(7)
    with http_receiver() as rx:
        factory = HttpCaptureEventSink.factory(rx.url, batch_size=500, linger_s=3600)
        sink = AsyncCaptureEventSink.wrap(factory, interval_ms=50)()
        for e in events:
            sink.emit(e)
        assert wait_for(lambda: len(rx.requests) == 1, 5)  # no flush() called
        assert decode_container(rx.requests[0].body) == events
        sink.close()
    assert len(rx.requests) == 1
