import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from faro.store import layout, writer
from faro.store.columns import events_to_table
from faro.store.journal import Change, Journal
from faro.store.writer import KAFKA_PARTITION, EventWriter, KafkaSource
from tests.sinks.events import mixed_events
from tests.store.events import stored_rows

DAY = 86_400_000


def test_batch_is_deduplicated_partitioned_and_sorted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writer, "ROW_GROUP_SIZE", 8)  # so that files hold several row groups
    events = mixed_events(200)
    for i, e in enumerate(events):
        e.processing_time += (i % 2) * DAY  # two dates
    table = events_to_table(events + events[:30])  # 30 redelivered
    summary = EventWriter(tmp_path, "ingest").write(table)
    assert (summary.rows, summary.duplicates) == (200, 30)
    assert sorted(r[0] for r in stored_rows(tmp_path, "event_id")) == sorted(
        e.event_id for e in events
    )
    expected_dirs = {
        layout.partition_dir(
            tmp_path, e.event_type.value, e.pipeline_id, layout.utc_date(e.processing_time)
        )
        for e in events
    }
    files = layout.event_files(tmp_path)
    assert {f.parent for f in files} == expected_dirs
    assert len(files) == len(expected_dirs)  # one file per partition and batch
    entity_files = layout.event_files(tmp_path, "ENTITY")
    assert any(pq.ParquetFile(f).metadata.num_row_groups > 1 for f in entity_files)
    for f in entity_files:
        # entity first, so that row-group statistics skip to one entity's rows
        keys = pq.read_table(f, columns=["entity_id", "feature_name", "processing_time"])
        rows = list(zip(*(keys.column(c).to_pylist() for c in keys.column_names), strict=True))
        assert rows == sorted(rows)
        group = pq.ParquetFile(f).metadata.row_group(0)
        stats = {group.column(i).path_in_schema: group.column(i).statistics
                 for i in range(group.num_columns)}  # fmt: skip
        assert stats["entity_id"].has_min_max and stats["processing_time"].has_min_max
        assert stats["trace_id"] is None  # random ids: min and max would prune nothing


def test_kafka_batches_name_files_by_offsets_and_record_them(tmp_path: Path) -> None:
    events = mixed_events(40)
    partitions = [i % 2 for i in range(40)]
    table = events_to_table(events).append_column(KAFKA_PARTITION, pa.array(partitions, pa.int32()))
    source = KafkaSource("faro.capture-events", {0: (100, 119), 1: (7, 26)})
    summary = EventWriter(tmp_path, "materialize").write(table, source)
    names = {Path(f).name for f in summary.files}
    assert names == {
        layout.kafka_file_name("faro.capture-events", 0, 100, 119),
        layout.kafka_file_name("faro.capture-events", 1, 7, 26),
    }
    assert Journal(tmp_path, "materialize").offsets() == {
        "faro.capture-events": {"0": 119, "1": 26}
    }
    assert len(stored_rows(tmp_path)) == 40


def test_a_crash_after_the_decision_is_finished_by_recovery(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = events_to_table(mixed_events(50)).append_column(
        KAFKA_PARTITION, pa.array([0] * 50, pa.int32())
    )

    def crash(self: Journal, entry: Path, payload: dict) -> None:
        raise SystemExit("killed between the journal write and the renames")

    monkeypatch.setattr(Journal, "_carry_out", crash)
    with pytest.raises(SystemExit):
        EventWriter(tmp_path, "materialize").write(table, KafkaSource("t", {0: (0, 49)}))
    assert stored_rows(tmp_path) == []
    monkeypatch.undo()

    writer = EventWriter(tmp_path, "materialize")
    assert EventWriter(tmp_path, "ingest").recover() == 0  # not its change to finish
    assert writer.recover() == 1
    assert len(stored_rows(tmp_path)) == 50
    assert writer.journal.offsets() == {"t": {"0": 49}}
    assert not list((tmp_path / layout.JOURNAL).iterdir())


def test_staged_files_without_a_decision_are_discarded(tmp_path: Path) -> None:
    writer = EventWriter(tmp_path, "materialize")
    staged = writer.journal.staging_path()
    staged.write_bytes(b"half a file")
    assert writer.recover() == 0
    assert not staged.exists()
    assert stored_rows(tmp_path) == []


def test_two_writers_storing_progress_at_once_lose_neither_update(tmp_path: Path) -> None:
    # The materializer and `faro import-delta` may share a store: each change
    # merges its offsets into the one file, and no merge may undo another.
    rounds = 400

    def store_progress(kind: str) -> None:
        journal = Journal(tmp_path, kind)
        for i in range(rounds):
            journal.apply(Change(offsets={kind: {"0": i}}))

    threads = [threading.Thread(target=store_progress, args=(k,)) for k in "abcd"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert Journal(tmp_path, "read").offsets() == {k: {"0": rounds - 1} for k in "abcd"}
