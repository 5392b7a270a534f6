import io
from pathlib import Path

import fastavro
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from faro.core import avro_codec
from faro.core.avro_codec import CONTAINER_BLOCK_EVENTS, encode_container, encode_single_object
from faro.core.events import CaptureEvent
from faro.store.avro_batch import AvroBatchDecoder, split_container
from faro.store.columns import table_to_events
from tests.sinks.events import mixed_events
from tests.store.events import store_times
from tests.strategies import capture_events


@given(events=st.lists(capture_events(store_times), max_size=12))
@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_block_decoding_is_lossless_for_every_shape(
    tmp_path: Path, events: list[CaptureEvent]
) -> None:
    batch = _decoder(tmp_path).decode([encode_single_object(e) for e in events])
    assert batch.rejected == []
    assert batch.kept == list(range(len(events)))
    assert table_to_events(batch.table) == events


_DECODERS: dict[Path, AvroBatchDecoder] = {}


def _decoder(scratch: Path) -> AvroBatchDecoder:
    """One per test: loading DuckDB's Avro extension takes ~0.2 s."""
    if scratch not in _DECODERS:
        _DECODERS[scratch] = AvroBatchDecoder(scratch)
    return _DECODERS[scratch]


def test_bad_messages_are_rejected_one_by_one_and_the_rest_kept(tmp_path: Path) -> None:
    events = mixed_events(60)
    messages = [encode_single_object(e) for e in events]
    bad = {
        3: b"",
        10: b"plain text",
        17: b"\xc3\x01" + b"\x00" * 8 + messages[17][10:],  # unknown fingerprint
        25: messages[25] + b"\x00",  # trailing byte
        33: messages[33][:-3],  # truncated
        41: messages[41][:10] + b"\xff" * 20,  # garbage payload
    }
    for i, data in bad.items():
        messages[i] = data
    out_of_range = events[50]
    out_of_range.processing_time = -1
    messages[50] = encode_single_object(out_of_range)
    batch = AvroBatchDecoder(tmp_path).decode(messages)
    rejected = dict(batch.rejected)
    assert set(rejected) == set(bad) | {50}
    assert "empty message" in rejected[3]
    assert "marker C3 01" in rejected[10]
    assert "fingerprint" in rejected[17]
    assert "bytes after the last field" in rejected[25]
    assert "processing_time -1" in rejected[50]
    kept = [i for i in range(60) if i not in rejected]
    assert batch.kept == kept
    assert table_to_events(batch.table) == [events[i] for i in kept]


def test_a_large_container_splits_at_blocks_and_decodes_in_body_order(tmp_path: Path) -> None:
    events = mixed_events(4_500)  # five blocks of at most CONTAINER_BLOCK_EVENTS
    body = encode_container(events)
    parts = split_container(body, 2)
    assert len(parts) == 2
    decoded = [avro_codec.decode_container(p) for p in parts]
    assert decoded[0] + decoded[1] == events
    assert abs(len(decoded[0]) - len(decoded[1])) <= CONTAINER_BLOCK_EVENTS
    thirds = split_container(body, 3)
    assert [e for p in thirds for e in avro_codec.decode_container(p)] == events
    assert table_to_events(_decoder(tmp_path).decode_container(body)) == events


def test_small_foreign_or_broken_containers_stay_whole() -> None:
    small = encode_container(mixed_events(1_500))  # two blocks, but not 1,000 events each
    assert split_container(small, 2) == [small]
    assert split_container(b"Obj\x01 not a container", 2) == [b"Obj\x01 not a container"]
    truncated = encode_container(mixed_events(3_000))[:-5]
    assert split_container(truncated, 2) == [truncated]
    records = [r for r in fastavro.reader(io.BytesIO(encode_container(mixed_events(3_000))))]
    out = io.BytesIO()  # another writer: deflate, blocks of its own size
    fastavro.writer(out, avro_codec.parsed_schema(), records, codec="deflate", sync_interval=16_000)
    parts = split_container(out.getvalue(), 2)
    assert len(parts) == 2
    assert [r for p in parts for r in fastavro.reader(io.BytesIO(p))] == records


def test_a_large_batch_decodes_in_parts_and_keeps_the_message_order(tmp_path: Path) -> None:
    events = mixed_events(3_001)
    messages = [encode_single_object(e) for e in events]
    messages[1_700] = b""  # rejected before decoding; the rest still decodes as blocks
    batch = _decoder(tmp_path).decode(messages)
    kept = [i for i in range(len(events)) if i != 1_700]
    assert [i for i, _ in batch.rejected] == [1_700]
    assert batch.kept == kept
    assert table_to_events(batch.table) == [events[i] for i in kept]
