import dataclasses
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


def _rows(path: str) -> list[dict]:
    reader = QueryBuilder().register("t", DeltaTable(path)).execute("SELECT * FROM t")
    return sorted(pa.table(reader.read_all()).to_pylist(), key=lambda r: r["event_id"])


def test_staged_files_stay_unseen_until_one_commit_shows_them_all(tmp_path) -> None:
    day = 86_400_000
    events = [dataclasses.replace(e, processing_time=e.processing_time + (i % 2) * day)
              for i, e in enumerate(mixed_events(50))]  # fmt: skip
    path = str(tmp_path / "staged")
    writers = [DeltaCaptureEventSink(path, batch_size=10) for _ in range(2)]
    for w in writers:
        w.stage()
    for i, e in enumerate(events):
        writers[i % 2].emit(e)  # each writer flushes (stages) every 10 events
    staged = [file for w in writers for file in w.staged()]
    assert DeltaTable(path).version() == 0 and _rows(path) == []  # created empty, nothing shown
    assert sum(file["rows"] for file in staged) == len(events)
    assert [w.emitted for w in writers] == [25, 25] and writers[0].staged() == []

    assert DeltaCaptureEventSink(path).commit(staged)
    assert DeltaTable(path).version() == 1  # one commit for every writer's files
    # the very rows, in the very layout, that appending them directly writes
    direct = str(tmp_path / "direct")
    plain = DeltaCaptureEventSink(direct)
    plain.emit_batch(events)
    plain.close()
    assert _rows(path) == _rows(direct)
    assert len({r["date"] for r in _rows(path)}) == 2


def test_a_commit_that_fails_counts_its_events_dropped(tmp_path) -> None:
    path = str(tmp_path / "staged")
    writer = DeltaCaptureEventSink(path)
    writer.stage()
    writer.emit_batch(mixed_events(30))
    staged = writer.staged()
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    committer = DeltaCaptureEventSink(str(blocker / "t"))
    assert committer.commit(staged) is False
    assert committer.dropped == 30 and committer.failures.count == 30
    assert _rows(path) == []


def test_what_an_unfinished_unit_of_work_staged_is_never_committed(tmp_path) -> None:
    # A Spark task killed after staging leaves files in its process's sink; the
    # next task on that process must not hand them over with its own.
    path = str(tmp_path / "staged")
    events = mixed_events(40)
    sink = DeltaCaptureEventSink(path, batch_size=10)
    sink.stage()
    for e in events[:25]:
        sink.emit(e)  # two files staged, five events buffered; then the task is killed
    sink.stage()  # the next task
    sink.emit_batch(events[25:])
    staged = sink.staged()
    assert sum(file["rows"] for file in staged) == 15
    assert DeltaCaptureEventSink(path).commit(staged)
    assert _event_ids(path) == sorted(e.event_id for e in events[25:])
