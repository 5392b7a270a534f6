"""faro import-delta: a DeltaCaptureEventSink's table into the store, each commit once."""

from __future__ import annotations

import dataclasses
import logging
import shutil
import threading
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable, write_deltalake

from faro import CaptureEvent, DeltaCaptureEventSink
from faro.cli import main
from faro.sinks.delta import to_table
from faro.store import layout
from faro.store.columns import table_to_events
from faro.store.delta_import import DeltaImport
from tests.sinks.events import mixed_events
from tests.support import wait_for


def stored_events(data_dir: Path) -> list[CaptureEvent]:
    files = layout.event_files(data_dir)
    tables = [pq.read_table(f) for f in files]
    return sorted((e for t in tables for e in table_to_events(t)), key=lambda e: e.event_id)


def by_id(events: list[CaptureEvent]) -> list[CaptureEvent]:
    return sorted(events, key=lambda e: e.event_id)


def append(table: Path, events: list[CaptureEvent]) -> None:
    sink = DeltaCaptureEventSink(str(table))
    sink.emit_batch(events)
    sink.close()


def test_each_commit_is_imported_once_and_compaction_adds_nothing(tmp_path: Path) -> None:
    table, store = tmp_path / "capture-events", tmp_path / "store"
    events = mixed_events(500)
    append(table, events[:100])
    append(table, events[100:200])
    writers = [DeltaCaptureEventSink(str(table)) for _ in range(2)]  # as Spark's tasks do
    for w in writers:
        w.stage()
    writers[0].emit_batch(events[200:250])
    writers[1].emit_batch(events[250:300])
    DeltaCaptureEventSink(str(table)).commit([f for w in writers for f in w.staged()])
    DeltaTable(str(table)).optimize.compact()  # rewrites the same rows (dataChange false)

    importer = DeltaImport(str(table), store)
    first = importer.run_once()
    assert (first.versions, first.events, first.version) == (4, 300, 3)
    assert (first.files, first.duplicates) == (4, 0)  # not the compacted file: no rows twice
    assert stored_events(store) == by_id(events[:300])
    again = importer.run_once()
    assert (again.versions, again.events, again.version) == (0, 0, 3)

    append(table, events[300:])
    later = DeltaImport(str(tmp_path / "." / "capture-events"), store)  # the same table
    assert later.imported_version == 3
    assert later.run_once().events == 200
    assert stored_events(store) == by_id(events)


def test_commits_are_gathered_into_bounded_writes(tmp_path: Path) -> None:
    table, store = tmp_path / "t", tmp_path / "store"
    events = mixed_events(300)
    for i in range(0, 300, 60):
        append(table, events[i : i + 60])
    summary = DeltaImport(str(table), store, batch_events=100).run_once()
    assert (summary.versions, summary.events) == (5, 300)
    # 60 + 60 reach the bound, then 60 + 60 again, then the last 60: three writes
    entity_dir = layout.partition_dir(store, "ENTITY", "user-feature-pipeline", "2023-11-14")
    assert len(list(entity_dir.glob("*.parquet"))) == 3
    assert stored_events(store) == by_id(events)


def test_an_unreadable_file_stops_the_import_and_a_rerun_loses_and_repeats_nothing(
    tmp_path: Path,
) -> None:
    table, store = tmp_path / "t", tmp_path / "store"
    events = mixed_events(300)
    for i in range(0, 300, 100):
        append(table, events[i : i + 100])
    [second] = [f for f in DeltaTable(str(table)).file_uris() if "part-" in f][1:2]
    aside = tmp_path / "aside.parquet"
    Path(second).rename(aside)
    importer = DeltaImport(str(table), store, batch_events=100)
    with pytest.raises(RuntimeError, match=r"version 1 of .* adds .*cannot be read") as err:
        importer.run_once()
    assert "the store holds versions up to 0" in str(err.value)
    assert stored_events(store) == by_id(events[:100])
    aside.rename(second)
    assert importer.run_once().events == 200
    assert stored_events(store) == by_id(events)


def test_a_version_the_log_no_longer_holds_is_named(tmp_path: Path) -> None:
    table = tmp_path / "t"
    for i in range(3):
        append(table, mixed_events(30)[i * 10 : i * 10 + 10])
    DeltaTable(str(table)).create_checkpoint()
    (table / "_delta_log" / f"{1:020d}.json").unlink()  # as log retention does
    importer = DeltaImport(str(table), tmp_path / "store")
    with pytest.raises(RuntimeError, match=r"no longer holds version 1 .*up to 0"):
        importer.run_once()
    assert importer.imported_version == 0


def test_a_table_re_created_under_the_same_path_is_imported_from_its_start(
    tmp_path: Path,
) -> None:
    table, store = tmp_path / "t", tmp_path / "store"
    events = mixed_events(40)
    for i in range(3):
        append(table, events[i * 10 : i * 10 + 10])
    assert DeltaImport(str(table), store).run_once().version == 2
    shutil.rmtree(table)
    append(table, events[30:])  # a new table: its own id, versions from 0 again
    summary = DeltaImport(str(table), store).run_once()
    assert (summary.versions, summary.events, summary.version) == (1, 10, 0)
    assert stored_events(store) == by_id(events)


def test_a_second_import_into_the_same_store_waits_its_turn(tmp_path: Path) -> None:
    table, store = tmp_path / "t", tmp_path / "store"
    append(table, mixed_events(10))
    first, second = DeltaImport(str(table), store), DeltaImport(str(table), store)
    with first._exclusive():  # as while the first one imports
        with pytest.raises(RuntimeError, match="another faro import-delta is writing to"):
            second.run_once()
    assert second.run_once().events == 10


def test_rows_the_store_cannot_hold_go_to_dead_letters(tmp_path: Path) -> None:
    table, store = tmp_path / "t", tmp_path / "store"
    events = mixed_events(20)
    events[7] = dataclasses.replace(events[7], operator_id="")
    write_deltalake(str(table), to_table(events), mode="append", partition_by=["date"])
    summary = DeltaImport(str(table), store).run_once()
    assert (summary.events, summary.dead_letters) == (19, 1)
    assert stored_events(store) == by_id(events[:7] + events[8:])
    dead = duckdb.execute(
        'SELECT topic, "offset", reason, value FROM read_parquet(?)',
        [str(store / layout.DEAD_LETTERS / "**" / "*.parquet")],
    ).fetchall()
    assert len(dead) == 1
    topic, version, reason, value = dead[0]
    assert topic == f"delta:{table}#{DeltaTable(str(table)).metadata().id}" and version == 0
    assert reason == "operator_id is empty; every CaptureEvent needs one"
    assert events[7].event_id.encode() in value


def test_the_command_imports_and_says_what_it_did(tmp_path: Path, capsys) -> None:
    table, store = tmp_path / "t", tmp_path / "store"
    append(table, mixed_events(40))
    assert main(["import-delta", str(table), "--data-dir", str(store)]) == 0
    assert "imported 1 Delta versions" in capsys.readouterr().out
    assert main(["import-delta", str(table), "--data-dir", str(store)]) == 0
    assert "nothing new after version 0" in capsys.readouterr().out
    nowhere, empty = tmp_path / "nowhere", tmp_path / "empty"
    assert main(["import-delta", str(nowhere), "--data-dir", str(store)]) == 2
    assert f"no table at {nowhere}: no such directory" in capsys.readouterr().err
    empty.mkdir()
    assert main(["import-delta", str(empty), "--data-dir", str(store)]) == 2
    assert f"{empty} is not a Delta table (yet)" in capsys.readouterr().err


def test_following_imports_new_commits_and_outlasts_a_failure(tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.INFO, "faro.store.delta")
    table, store = tmp_path / "t", tmp_path / "store"
    events = mixed_events(90)
    append(table, events[:30])
    importer = DeltaImport(str(table), store)
    stop = threading.Event()
    follower = threading.Thread(target=importer.follow, args=(0.05, stop))
    follower.start()
    try:
        assert wait_for(lambda: len(stored_events(store)) == 30)
        # a commit whose file is missing from the start: staged, set aside, committed
        writer = DeltaCaptureEventSink(str(table))
        writer.stage()
        writer.emit_batch(events[30:60])
        [staged] = writer.staged()
        missing, aside = table / staged["add"]["path"], tmp_path / "aside.parquet"
        missing.rename(aside)
        assert DeltaCaptureEventSink(str(table)).commit([staged])
        assert wait_for(lambda: "cannot be read" in caplog.text)
        aside.rename(missing)
        append(table, events[60:])
        assert wait_for(lambda: len(stored_events(store)) == 90)
    finally:
        stop.set()
        follower.join(5)
    assert not follower.is_alive()
    assert stored_events(store) == by_id(events)
