"""Keeping the store small and lawful: compaction, retention and per-entity erasure.

Each rewrite is a journaled change (new file in, old files out), so a crash
leaves either the old files or the new one, never both. Run one maintenance
command at a time per data directory; the materializer may keep running,
since these commands only touch files that existed when they started.
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from faro.store import layout
from faro.store.columns import SCHEMA
from faro.store.journal import Change, Journal
from faro.store.writer import write_parquet

log = logging.getLogger("faro.store")
# The writer orders a file of several row groups entity first; a compacted file holds
# a whole day, which feature reads (health, summaries, detection) would otherwise scan
# end to end.
# Feature first keeps each feature's values in their own row groups, and entity
# next still lets row-group statistics prune a per-entity lookup within each.
_SORT = "feature_name, entity_id, operator_id, processing_time, event_id"


def _connect() -> duckdb.DuckDBPyConnection:
    # Progress is logged per partition; DuckDB's own bar would interleave with it.
    db = duckdb.connect()
    db.execute("SET enable_progress_bar = false")
    return db


@dataclass
class CompactionReport:
    partitions: int = 0
    files_before: int = 0
    files_after: int = 0
    rows: int = 0


def compact(data_dir: Path | str, min_files: int = 2) -> CompactionReport:
    """Merges each partition's files into one file sorted feature first; rows are
    unchanged."""
    data_dir = Path(data_dir)
    journal = Journal(data_dir, "maintain")
    journal.recover()
    report = CompactionReport()
    db = _connect()
    for partition in layout.event_partitions(data_dir):
        files = sorted(partition.glob("*.parquet"))
        report.files_before += len(files)
        if len(files) < min_files:
            report.files_after += len(files)
            continue
        table = db.execute(
            f"SELECT * FROM read_parquet(?, hive_partitioning = false) ORDER BY {_SORT}",
            [[str(f) for f in files]],
        ).to_arrow_table()
        staged = journal.staging_path()
        write_parquet(table.cast(SCHEMA), staged)
        target = partition / f"compacted-{uuid.uuid4().hex}.parquet"
        journal.apply(
            Change(
                moves=[(journal.relative(staged), journal.relative(target))],
                deletes=[journal.relative(f) for f in files],
            )
        )
        report.partitions += 1
        report.files_after += 1
        report.rows += table.num_rows
        log.info("compacted %s: %d files -> 1 (%d rows)", partition, len(files), table.num_rows)
    return report


def expire(data_dir: Path | str, retention_days: int, today: dt.date | None = None) -> list[str]:
    """Deletes whole ``date=`` partitions (events and dead letters) older than retention."""
    if retention_days < 1:
        raise ValueError(f"retention must be at least 1 day, got {retention_days}")
    data_dir = Path(data_dir)
    today = today or dt.datetime.now(dt.timezone.utc).date()
    cutoff = (today - dt.timedelta(days=retention_days)).isoformat()
    removed = []
    dirs = layout.event_partitions(data_dir) + sorted(
        (data_dir / layout.DEAD_LETTERS).glob("date=*")
    )
    for directory in dirs:
        if layout.partition_values(directory).get("date", "9999") < cutoff:
            shutil.rmtree(directory)
            removed.append(str(directory.relative_to(data_dir)))
            log.info("retention: removed %s", directory)
    return removed


def erase_entity(data_dir: Path | str, entity_id: str) -> int:
    """Removes every ENTITY row of ``entity_id``; returns how many rows were removed.

    Files are rewritten only where row-group statistics say the entity may be
    present, so erasing one entity from a large store reads little.
    """
    data_dir = Path(data_dir)
    journal = Journal(data_dir, "maintain")
    journal.recover()
    db = _connect()
    removed = 0
    for path in layout.event_files(data_dir, "ENTITY"):
        if not _may_contain(path, entity_id):
            continue
        hits = db.execute(
            "SELECT count(*) FROM read_parquet(?, hive_partitioning = false) WHERE entity_id = ?",
            [str(path), entity_id],
        ).fetchone()
        count = hits[0] if hits else 0
        if not count:
            continue
        kept = db.execute(
            "SELECT * FROM read_parquet(?, hive_partitioning = false) "
            "WHERE entity_id IS DISTINCT FROM ?",
            [str(path), entity_id],
        ).to_arrow_table()
        change = Change(deletes=[journal.relative(path)])
        if kept.num_rows:
            staged = journal.staging_path()
            write_parquet(kept.cast(SCHEMA), staged)
            target = path.with_name(f"erased-{uuid.uuid4().hex}.parquet")
            change.moves.append((journal.relative(staged), journal.relative(target)))
        journal.apply(change)
        removed += count
    log.info("erased %d ENTITY rows of entity %r", removed, entity_id)
    return removed


def _may_contain(path: Path, entity_id: str) -> bool:
    metadata = pq.ParquetFile(path).metadata
    column = metadata.schema.names.index("entity_id")
    for i in range(metadata.num_row_groups):
        stats = metadata.row_group(i).column(column).statistics
        if stats is None or not stats.has_min_max:
            return True
        if stats.min <= entity_id <= stats.max:
            return True
    return False
