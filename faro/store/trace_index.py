"""Which store files hold a trace id, kept in memory for trace lookups.

Trace ids are hashes, so no row order puts one trace's rows together, and
row-group statistics cannot skip anything: without an index a trace lookup
reads the trace ids of every ENTITY event (about 0.5 s at 10 M events). A
file's trace ids never change (:mod:`faro.store.filecache`), so each file's
are hashed to 64 bits once and kept sorted; a lookup then opens only the
files whose hashes include the trace's (a collision only costs reading one
more file: the query still matches the id itself).
"""

from __future__ import annotations

from collections.abc import Callable

import duckdb
import numpy as np

from faro.store.filecache import FileCache, runs

_HASHES = """
    SELECT file_index, hash(trace_id) AS h
    FROM read_parquet($files, hive_partitioning = false)
    WHERE trace_id IS NOT NULL
    ORDER BY file_index
"""


class TraceIndex:
    """Thread-safe; holds at most ``max_ids`` hashes (8 bytes each: 256 MB by
    default), least recently used file out first.

    ``cursor`` opens a DuckDB cursor; DuckDB's ``hash`` hashes both the stored ids
    and the one looked up, so they agree by construction.
    """

    def __init__(
        self, cursor: Callable[[], duckdb.DuckDBPyConnection], max_ids: int = 32_000_000
    ) -> None:
        self._cursor = cursor
        self.files: FileCache[np.ndarray] = FileCache(max_ids, lambda h: h.size)

    def files_with(self, trace_id: str, files: list[str]) -> list[str]:
        """The files of ``files`` that may hold ``trace_id``; those not held are
        indexed now, in one query."""
        held = self.files.get("trace", files, self._read)
        h = np.uint64(self._hash(trace_id))
        return [
            f for f, hashes in zip(files, held, strict=True)
            if (i := np.searchsorted(hashes, h)) < hashes.size and hashes[i] == h
        ]  # fmt: skip

    def _hash(self, trace_id: str) -> int:
        cursor = self._cursor()
        try:
            row = cursor.execute("SELECT hash($id::VARCHAR)", {"id": trace_id}).fetchone()
        finally:
            cursor.close()
        assert row is not None, "SELECT without FROM returns one row"
        return int(row[0])

    def _read(self, files: list[str]) -> dict[str, np.ndarray]:
        cursor = self._cursor()
        try:
            result = cursor.execute(_HASHES, {"files": files}).to_arrow_table()
        finally:
            cursor.close()
        hashes = result.column(1).to_numpy()
        out = {f: np.empty(0, np.uint64) for f in files}
        for i, start, stop in runs(result.column(0).to_numpy()):
            out[files[i]] = np.unique(hashes[start:stop])
        return out
