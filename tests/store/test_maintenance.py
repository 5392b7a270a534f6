import datetime as dt
from pathlib import Path

from faro.store import layout
from faro.store.columns import events_to_table
from faro.store.maintenance import compact, erase_entity, expire
from faro.store.writer import EventWriter
from tests.sinks.events import mixed_events
from tests.store.events import stored_rows

DAY = 86_400_000


def _store(tmp_path: Path, batches: int = 4, per_batch: int = 100) -> None:
    writer = EventWriter(tmp_path, "ingest")
    for b in range(batches):
        events = mixed_events(per_batch)
        for e in events:
            e.event_id = f"{b}-{e.event_id}"
        writer.write(events_to_table(events))


def test_compaction_keeps_every_row_and_leaves_one_file_per_partition(tmp_path: Path) -> None:
    _store(tmp_path)
    before = stored_rows(tmp_path)
    files_before = layout.event_files(tmp_path)
    report = compact(tmp_path)
    assert stored_rows(tmp_path) == before
    assert report.files_before == len(files_before)
    partitions = layout.event_partitions(tmp_path)
    assert report.files_after == len(partitions) == len(layout.event_files(tmp_path))
    assert report.rows == len(before)


def test_retention_removes_whole_old_partitions_only(tmp_path: Path) -> None:
    today = dt.date(2023, 11, 20)
    base = int(dt.datetime(2023, 11, 20, tzinfo=dt.timezone.utc).timestamp() * 1000)
    events = mixed_events(100)
    for i, e in enumerate(events):
        e.processing_time = base - (i % 5) * DAY  # today and 1..4 days ago
    EventWriter(tmp_path, "ingest").write(events_to_table(events))
    removed = expire(tmp_path, retention_days=2, today=today)
    kept_times = [r[0] for r in stored_rows(tmp_path, "processing_time")]
    assert sorted(kept_times) == sorted(
        e.processing_time for e in events if e.processing_time >= base - 2 * DAY
    )
    assert removed and all("date=2023-11-1" in r for r in removed)


def test_erasure_removes_all_and_only_that_entitys_rows(tmp_path: Path) -> None:
    _store(tmp_path)
    before = stored_rows(tmp_path, "event_id, event_type, entity_id")
    target = "user-5"
    expected_removed = [r for r in before if r[1] == "ENTITY" and r[2] == target]
    assert expected_removed
    assert erase_entity(tmp_path, target) == len(expected_removed)
    after = stored_rows(tmp_path, "event_id, event_type, entity_id")
    assert after == [r for r in before if r not in expected_removed]
    assert erase_entity(tmp_path, target) == 0
