"""Events and helpers shared by the store tests."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import duckdb
from hypothesis import strategies as st

from faro import CaptureEvent
from faro.store import layout
from faro.store.columns import MAX_EPOCH_MS, events_to_table
from faro.store.writer import EventWriter

store_times = st.integers(0, MAX_EPOCH_MS)


def stored_rows(data_dir: Path, columns: str = "*") -> list[tuple]:
    """Every stored event row, sorted, as DuckDB reads the store."""
    files = [str(f) for f in layout.event_files(data_dir)]
    if not files:
        return []
    return sorted(
        duckdb.execute(
            f"SELECT {columns} FROM read_parquet(?, hive_partitioning = false)", [files]
        ).fetchall(),
        key=repr,
    )


def write_parts(data_dir: Path, events: list[CaptureEvent], parts: Iterable[int],
                of: int) -> list[CaptureEvent]:  # fmt: skip
    """Writes ``events[part::of]`` for each of ``parts``, one batch each (so each
    partition gets a file per part); returns the events written."""
    writer = EventWriter(data_dir, "test")
    written: list[CaptureEvent] = []
    for part in parts:
        writer.write(events_to_table(events[part::of]))
        written += events[part::of]
    return written
