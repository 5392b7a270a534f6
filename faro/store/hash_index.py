"""Which store files (and rows) hold a trace id or an entity, kept in memory.

Trace ids are hashes, so no row order puts one trace's rows together, and
row-group statistics cannot skip anything: without an index a trace lookup
reads the trace ids of every ENTITY event (about 0.5 s at 10 M events).
Statistics skip to an entity's rows inside a file of several row groups
(those are sorted by entity), but nothing but reading says which files hold
it, and each file that is opened costs a row group's worth of decoding. A
file's contents never change (:mod:`faro.store.filecache`), so each file's
values are hashed to 64 bits once and kept sorted; a lookup then opens only
the files that hold the value (and, for traces, reads only its rows: DuckDB
skips row groups by ``file_row_number``). A collision only costs reading one
more file or row: the queries still match the value itself.
"""

from __future__ import annotations

import numpy as np

from faro.store.filecache import FileCache, Query, per_file

_ROWS = """
    SELECT file_index, hash({column}) AS h, file_row_number
    FROM read_parquet($files, hive_partitioning = false, file_row_number = true)
    WHERE {column} IS NOT NULL
    ORDER BY file_index
"""
_DISTINCT = """
    SELECT DISTINCT file_index, hash({column}) AS h
    FROM read_parquet($files, hive_partitioning = false)
    WHERE {column} IS NOT NULL
    ORDER BY file_index
"""

Held = tuple[np.ndarray, np.ndarray | None]
"""A file's hashes (ascending) and, when rows are kept, the row number of each."""


class HashIndex:
    """Thread-safe index of one string column; holds at most ``max_size`` hashes (8
    bytes each, 16 with row numbers), least recently used file out first.

    ``rows``: keep each row's number (for :meth:`rows_of`); without it a file keeps
    each distinct hash once, which is all :meth:`files_of` needs. ``query`` runs the
    SQL; DuckDB's ``hash`` hashes both the stored values and the one looked up, so
    they agree by construction.
    """

    def __init__(
        self, query: Query, column: str, *, rows: bool, max_size: int = 16_000_000
    ) -> None:
        self._query = query
        self._sql = (_ROWS if rows else _DISTINCT).format(column=column)
        self._column = column
        self.files: FileCache[Held] = FileCache(max_size, lambda held: held[0].size)

    def files_of(self, value: str, files: list[str]) -> list[str]:
        """Those of ``files`` that may hold ``value``, in their order."""
        h = self._hash(value)
        held = zip(files, self._held(files), strict=True)
        return [f for f, (hashes, _) in held if _span(hashes, h)]

    def files_of_any(self, values: list[str], files: list[str]) -> list[str]:
        """Those of ``files`` that may hold any of ``values``, in their order: the
        values hashed in one query, each file searched for all of them at once."""
        if not values:
            return []
        wanted = self._query("SELECT hash(unnest($v::VARCHAR[]))", {"v": values})
        hs = np.unique(wanted.column(0).to_numpy())
        held = zip(files, self._held(files), strict=True)
        return [f for f, (hashes, _) in held if _any(hashes, hs)]

    def rows_of(self, value: str, files: list[str]) -> dict[str, list[int]]:
        """The row numbers that may hold ``value``, per file of ``files`` that may."""
        h = self._hash(value)
        out = {}
        for f, (hashes, rows) in zip(files, self._held(files), strict=True):
            assert rows is not None, "rows_of needs an index made with rows=True"
            if span := _span(hashes, h):
                out[f] = rows[span].tolist()
        return out

    def _held(self, files: list[str]) -> list[Held]:
        """Each file's hashes; files not held are indexed now, in one query."""
        return self.files.get(self._column, files, self._read)

    def _hash(self, value: str) -> int:
        return self._query("SELECT hash($v::VARCHAR)", {"v": value}).column(0).to_numpy()[0]

    def _read(self, files: list[str]) -> dict[str, Held]:
        result = self._query(self._sql, {"files": files})
        hashes = result.column(1).to_numpy()
        numbers = result.column(2).to_numpy() if result.num_columns > 2 else None
        out: dict[str, Held] = {}
        for f, part in per_file(files, result.column(0).to_numpy()).items():
            order = np.argsort(hashes[part])
            out[f] = (hashes[part][order], None if numbers is None else numbers[part][order])
        return out


def _span(hashes: np.ndarray, h: int) -> slice | None:
    """Where ``h`` is in ascending ``hashes``; None when it is not there."""
    start, stop = np.searchsorted(hashes, h), np.searchsorted(hashes, h, side="right")
    return slice(int(start), int(stop)) if stop > start else None


def _any(hashes: np.ndarray, hs: np.ndarray) -> bool:
    """Whether ascending ``hashes`` holds any of ``hs``."""
    at = np.searchsorted(hashes, hs)
    inside = at < hashes.size
    return bool(np.any(hashes[at[inside]] == hs[inside]))
