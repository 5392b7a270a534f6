"""Numeric ENTITY values per file and feature, kept in memory for value summaries.

Exact percentiles need every value of the window, and selecting a busy
feature's values from Parquet (a million of a day) costs more than
summarizing them. A file's values never change (:mod:`faro.store.filecache`),
so each file's values of a feature are read once, sorted by processing time,
and any later window, aligned or not, is a binary search per file.
"""

from __future__ import annotations

import numpy as np

from faro.store.filecache import FileCache, Query, per_file

Values = tuple[np.ndarray, np.ndarray]
"""Processing times (ascending) and the numeric values recorded at them."""

_SQL = """
    SELECT file_index, processing_time, feature_value
    FROM {events}
    WHERE feature_name = $feature AND feature_value IS NOT NULL
    ORDER BY file_index
"""
"""Times are sorted per file in numpy (half the cost of sorting them in DuckDB)."""


class ValueCache:
    """Thread-safe; holds at most ``max_values`` values (16 bytes each with their
    times: 256 MB by default), least recently used file and feature out first.
    ``query`` reads the values.
    """

    def __init__(self, query: Query, max_values: int = 16_000_000) -> None:
        self._query = query
        self.files: FileCache[Values] = FileCache(max_values, lambda v: v[0].size)

    def between(self, feature: str, files: list[str], since: int, until: int) -> np.ndarray:
        """The non-null numeric values of ``feature`` in ``files`` recorded in
        [since, until) of processing time; files not held are read now, in one query."""
        held = self.files.get(feature, files, lambda new: self._read(feature, new))
        parts = [
            values[np.searchsorted(times, since) : np.searchsorted(times, until)]
            for times, values in held
        ]
        return np.concatenate(parts) if parts else np.empty(0)

    def _read(self, feature: str, files: list[str]) -> dict[str, Values]:
        result = self._query(_SQL, {"files": files, "feature": feature})
        times, values = result.column(1).to_numpy(), result.column(2).to_numpy()
        out: dict[str, Values] = {}
        for f, rows in per_file(files, result.column(0).to_numpy()).items():
            order = np.argsort(times[rows], kind="stable")
            out[f] = (times[rows][order], values[rows][order])
        return out
