import io
import json

import avro.datafile
import avro.io
import avro.schema
import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from faro.core import avro_binary, avro_codec
from faro.core.avro_codec import (
    CaptureEventDecodeError,
    decode_container,
    decode_single_object,
    encode_container,
    encode_single_object,
)
from faro.core.events import CaptureEvent, EventType, OperatorType
from faro.core.json_codec import from_json, to_json, to_json_array
from tests.strategies import capture_events


@given(capture_events())
@settings(max_examples=300)
def test_json_round_trip_is_lossless(event: CaptureEvent) -> None:
    assert from_json(to_json(event)) == [event]


@given(capture_events())
@settings(max_examples=300)
def test_avro_single_object_round_trip_is_lossless(event: CaptureEvent) -> None:
    assert decode_single_object(encode_single_object(event)) == event


@given(st.lists(capture_events(), max_size=10))
def test_avro_container_and_json_array_round_trip(events: list[CaptureEvent]) -> None:
    assert decode_container(encode_container(events)) == events
    assert from_json(to_json_array(events)) == events


def _apache_schema() -> avro.schema.Schema:
    return avro.schema.parse(json.dumps(avro_codec.schema_json()))


@given(capture_events())
@settings(max_examples=200)
def test_single_object_bytes_are_readable_by_apache_avro(event: CaptureEvent) -> None:
    """A second, independent Avro implementation reads our Kafka messages with the .avsc."""
    schema = _apache_schema()
    data = encode_single_object(event)
    assert data[:2] == b"\xc3\x01"
    assert data[2:10] == schema.fingerprint("CRC-64-AVRO")
    record = avro.io.DatumReader(schema).read(avro.io.BinaryDecoder(io.BytesIO(data[10:])))
    assert CaptureEvent.from_dict(record) == event


def test_apache_avro_writes_what_faro_reads() -> None:
    schema = _apache_schema()
    event = CaptureEvent(
        event_id="e1",
        event_type=EventType.AGGREGATE,
        pipeline_id="p",
        operator_id="op",
        operator_type=OperatorType.WINDOW,
        processing_time=1_700_000_000_000,
        input_count=7,
        output_count=3,
    )
    buf = io.BytesIO()
    buf.write(b"\xc3\x01" + schema.fingerprint("CRC-64-AVRO"))
    avro.io.DatumWriter(schema).write(event.to_dict(), avro.io.BinaryEncoder(buf))
    assert decode_single_object(buf.getvalue()) == event


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "not Avro single-object encoded"),
        (b'{"event_id": 1}', "not Avro single-object encoded"),
        (b"\xc3\x01" + b"\x00" * 8 + b"\x02", "unknown schema fingerprint"),
    ],
)
def test_undecodable_messages_say_why(data: bytes, reason: str) -> None:
    with pytest.raises(CaptureEventDecodeError, match=reason):
        decode_single_object(data)


def test_truncated_payload_is_a_decode_error_not_a_crash() -> None:
    event = CaptureEvent("e", EventType.ENTITY, "p", "o", OperatorType.MAP, 1, entity_id="u")
    data = encode_single_object(event)
    with pytest.raises(CaptureEventDecodeError, match="corrupt Avro payload"):
        decode_single_object(data[:14])


def test_bad_json_events_name_the_position_and_field() -> None:
    good = json.loads(to_json(CaptureEvent("e", EventType.ENTITY, "p", "o", OperatorType.MAP, 1)))
    bad = dict(good)
    del bad["pipeline_id"]
    with pytest.raises(ValueError, match=r"event 1: .*missing required field 'pipeline_id'"):
        from_json(json.dumps([good, bad]))
    with pytest.raises(ValueError, match="operator_type"):
        from_json(json.dumps({**good, "operator_type": "NOPE"}))
    with pytest.raises(ValueError, match="not valid JSON"):
        from_json("{")


@given(capture_events())
@settings(max_examples=500)
def test_specialized_encoder_writes_the_same_bytes_as_fastavro(event: CaptureEvent) -> None:
    reference = io.BytesIO()
    fastavro.schemaless_writer(reference, avro_codec.parsed_schema(), event.to_dict())
    assert avro_binary.encode(event) == reference.getvalue()


@given(st.lists(capture_events(), max_size=5))
def test_containers_are_readable_by_apache_avro(events: list[CaptureEvent]) -> None:
    reader = avro.datafile.DataFileReader(
        io.BytesIO(encode_container(events)), avro.io.DatumReader()
    )
    assert [CaptureEvent.from_dict(r) for r in reader] == events


def test_longs_encode_as_fastavro_does_across_refills_of_the_varint_cache() -> None:
    """Epoch-millisecond times take the cached path; enough distinct ones to refill
    its cache several times, and the edges of int64, must encode as fastavro does."""
    times = [1_700_000_000_000 + i * 37 for i in range(5 * avro_binary._TAILS_KEPT * 64 // 37)]
    values = [*times, -1, 63, 64, -65, 2**21, -(2**21), 2**63 - 1, -(2**63)]
    for n in values:
        out = io.BytesIO()
        fastavro.schemaless_writer(out, "long", n)
        assert avro_binary.long_bytes(n) == out.getvalue(), n
