"""Which store files hold a trace id, kept in memory for trace lookups.

Trace ids are hashes, so no row order puts one trace's rows together, and
row-group statistics cannot skip anything: without an index a trace lookup
reads the trace ids of every ENTITY event (about 0.5 s at 10 M events). A
file's trace ids never change (:mod:`faro.store.filecache`), so each file's
are hashed to 64 bits once and kept sorted with their row numbers; a lookup
then reads only those rows of the files that hold the trace (DuckDB skips
row groups by ``file_row_number``). A collision only costs reading one more
row: the query still matches the id itself.
"""

from __future__ import annotations

import numpy as np

from faro.store.filecache import FileCache, Query, per_file

_HASHES = """
    SELECT file_index, hash(trace_id) AS h, file_row_number
    FROM read_parquet($files, hive_partitioning = false, file_row_number = true)
    WHERE trace_id IS NOT NULL
    ORDER BY file_index
"""

Rows = tuple[np.ndarray, np.ndarray]
"""Trace-id hashes (ascending) and the row numbers holding them."""


class TraceIndex:
    """Thread-safe; holds at most ``max_rows`` rows (16 bytes each with their row
    numbers: 256 MB by default), least recently used file out first.

    ``query`` runs the SQL; DuckDB's ``hash`` hashes both the stored ids and the one
    looked up, so they agree by construction.
    """

    def __init__(self, query: Query, max_rows: int = 16_000_000) -> None:
        self._query = query
        self.files: FileCache[Rows] = FileCache(max_rows, lambda r: r[0].size)

    def rows_of(self, trace_id: str, files: list[str]) -> dict[str, list[int]]:
        """The row numbers that may hold ``trace_id``, per file of ``files`` that may
        hold it; files not held are indexed now, in one query."""
        held = self.files.get("trace", files, self._read)
        h = self._query("SELECT hash($id::VARCHAR)", {"id": trace_id}).column(0).to_numpy()[0]
        out = {}
        for f, (hashes, rows) in zip(files, held, strict=True):
            start, stop = np.searchsorted(hashes, h), np.searchsorted(hashes, h, side="right")
            if stop > start:
                out[f] = rows[start:stop].tolist()
        return out

    def _read(self, files: list[str]) -> dict[str, Rows]:
        result = self._query(_HASHES, {"files": files})
        hashes, numbers = result.column(1).to_numpy(), result.column(2).to_numpy()
        out: dict[str, Rows] = {}
        for f, rows in per_file(files, result.column(0).to_numpy()).items():
            order = np.argsort(hashes[rows])
            out[f] = (hashes[rows][order], numbers[rows][order])
        return out
