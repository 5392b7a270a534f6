from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from faro import EventType, OtlpCaptureEventSink
from tests.sinks.events import mixed_events
from tests.support import http_receiver


def _attributes(record) -> dict:
    out = {}
    for kv in record.attributes:
        kind = kv.value.WhichOneof("value")
        out[kv.key] = getattr(kv.value, kind)
    return out


def test_events_are_valid_otlp_log_records_carrying_every_field() -> None:
    events = mixed_events(120)
    with http_receiver() as rx:
        sink = OtlpCaptureEventSink(rx.url + "/", service_name="order-svc", batch_size=100)
        for e in events:
            sink.emit(e)
        assert sink.flush(5)
    assert [r.path for r in rx.requests] == ["/v1/logs", "/v1/logs"]
    records = []
    for request in rx.requests:
        parsed = json_format.Parse(
            request.body, ExportLogsServiceRequest()
        )  # the reference decoder
        [resource_logs] = parsed.resource_logs
        assert resource_logs.resource.attributes[0].value.string_value == "order-svc"
        records.extend(resource_logs.scope_logs[0].log_records)
    assert len(records) == len(events)
    for event, record in zip(events, records, strict=False):
        attrs = _attributes(record)
        assert record.time_unix_nano == event.processing_time * 1_000_000
        assert attrs["faro.event_id"] == event.event_id
        assert attrs["faro.pipeline_id"] == event.pipeline_id
        if event.event_type is EventType.AGGREGATE:
            assert attrs["faro.input_count"] == event.input_count
            assert attrs["faro.feature_stats.order_count.sum"] == event.feature_stats[0].sum
        else:
            assert attrs["faro.entity_id"] == event.entity_id
            assert attrs["faro.feature_value"] == event.feature_value
