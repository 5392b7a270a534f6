from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from faro.core.avro_codec import encode_single_object
from faro.core.events import CaptureEvent
from faro.store.avro_batch import AvroBatchDecoder
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
