"""Events and helpers shared by the store tests."""

from __future__ import annotations

from pathlib import Path

import duckdb
from hypothesis import strategies as st

from faro.store import layout
from faro.store.columns import MAX_EPOCH_MS

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
