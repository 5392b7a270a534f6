import time

import pyarrow as pa
from deltalake import DeltaTable, QueryBuilder

from faro import DeltaCaptureEventSink
from tests.sinks.events import mixed_events


def _event_ids(path: str) -> list[str]:
    reader = QueryBuilder().register("t", DeltaTable(path)).execute("SELECT event_id FROM t")
    return sorted(pa.table(reader.read_all()).column("event_id").to_pylist())


def test_full_batches_commit_and_a_lingering_partial_batch_follows(tmp_path) -> None:
    path = str(tmp_path / "events")
    events = mixed_events(25)
    sink = DeltaCaptureEventSink(path, batch_size=10, linger_s=0.3)
    for e in events[:20]:
        sink.emit(e)
    assert DeltaTable(path).version() == 1  # two commits: versions 0 and 1
    sink.emit(events[20])
    time.sleep(0.35)
    sink.emit(events[21])  # the partial batch's first event has waited long enough
    assert DeltaTable(path).version() == 2
    assert _event_ids(path) == sorted(e.event_id for e in events[:22])
    for e in events[22:]:
        sink.emit(e)
    sink.close()
    assert _event_ids(path) == sorted(e.event_id for e in events)
    assert sink.emitted == len(events) and sink.dropped == 0
