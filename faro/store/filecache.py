"""What the query layer derives from store files, kept in memory by file name.

A store file never changes under its name (compaction and erasure write new
files), so whatever is computed from one file stays true for as long as that
file is asked for. Nothing can go stale: a file that is gone is simply no
longer asked for, and ages out when the cache is full.
"""

from __future__ import annotations

import itertools
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

import numpy as np
import pyarrow as pa

V = TypeVar("V")
Query = Callable[[str, dict[str, Any]], pa.Table]
"""Runs SQL with its ``$`` parameters bound, on a cursor of its own, and returns the
result as Arrow; ``{events}`` in the SQL reads ``$files`` and ``{nulls}`` counts null
ENTITY values (:class:`faro.store.queries.StoreQueries` gives the caches its own)."""


class FileCache(Generic[V]):
    """Thread-safe map from ``(key, file)`` to a value derived from that file.

    Holds values of at most ``max_size`` in all (as ``size`` measures them), least
    recently used out first; the newest value is kept even when it alone is larger.
    """

    def __init__(self, max_size: int, size: Callable[[V], int]) -> None:
        self.max_size = max_size
        self._size = size
        self._values: OrderedDict[tuple[Hashable, str], V] = OrderedDict()
        self._held = 0
        self._lock = threading.Lock()

    @property
    def held(self) -> int:
        """The size of everything held now."""
        return self._held

    @property
    def largest(self) -> int:
        """The size of the largest single value held."""
        with self._lock:
            return max((self._size(v) for v in self._values.values()), default=0)

    def get(
        self, key: Hashable, files: list[str], compute: Callable[[list[str]], dict[str, V]]
    ) -> list[V]:
        """The values of ``files`` under ``key``, in their order; ``compute`` derives
        those not held, all in one call (it returns a value for every file it gets)."""
        with self._lock:
            found = {f: self._values.get((key, f)) for f in files}
            for f, v in found.items():
                if v is not None:
                    self._values.move_to_end((key, f))
        missing = [f for f, v in found.items() if v is None]
        if missing:
            computed = compute(missing)
            for f in missing:
                found[f] = computed[f]
                self._keep((key, f), computed[f])
        return [v for v in found.values() if v is not None]

    def _keep(self, at: tuple[Hashable, str], value: V) -> None:
        with self._lock:
            old = self._values.pop(at, None)
            self._held -= self._size(old) if old is not None else 0
            self._values[at] = value
            self._held += self._size(value)
            while self._held > self.max_size and len(self._values) > 1:
                _, evicted = self._values.popitem(last=False)
                self._held -= self._size(evicted)


def per_file(files: list[str], file_index: np.ndarray) -> dict[str, slice]:
    """The rows of each of ``files`` in a result sorted by DuckDB's ``file_index``
    column (a row's position in ``files``: far cheaper to carry than ``filename``);
    an empty slice for a file without rows."""
    out = {f: slice(0, 0) for f in files}
    bounds = [0, *(np.flatnonzero(np.diff(file_index)) + 1).tolist(), len(file_index)]
    for start, stop in itertools.pairwise(bounds):
        if stop > start:
            out[files[int(file_index[start])]] = slice(start, stop)
    return out
