"""The file cache derives each file once and lets the least recently used go first."""

from __future__ import annotations

import numpy as np

from faro.store.filecache import FileCache, per_file


def test_only_missing_files_are_computed_and_the_oldest_is_evicted() -> None:
    asked: list[list[str]] = []

    def compute(files: list[str]) -> dict[str, str]:
        asked.append(files)
        return {f: f * 2 for f in files}

    cache: FileCache[str] = FileCache(max_size=6, size=len)
    assert cache.get("k", ["a", "b"], compute) == ["aa", "bb"]
    assert cache.get("k", ["b", "c"], compute) == ["bb", "cc"]
    assert asked == [["a", "b"], ["c"]]
    assert cache.held == 6
    cache.get("other", ["d"], compute)  # over the bound: "a" was used least recently
    assert asked[-1] == ["d"] and cache.held == 6
    cache.get("k", ["a", "b"], compute)
    assert asked[-1] == ["a"]


def test_a_value_larger_than_the_bound_is_still_kept() -> None:
    cache: FileCache[str] = FileCache(max_size=1, size=len)
    cache.get("k", ["abc"], lambda files: {f: f for f in files})
    assert cache.held == cache.largest == 3


def test_per_file_cuts_where_the_file_changes() -> None:
    files = ["a", "b", "c", "d", "e", "f"]
    assert per_file(files, np.array([0, 0, 2, 5, 5, 5])) == {
        "a": slice(0, 2), "b": slice(0, 0), "c": slice(2, 3), "d": slice(0, 0),
        "e": slice(0, 0), "f": slice(3, 6),
    }  # fmt: skip
    assert per_file(["a"], np.array([], np.int64)) == {"a": slice(0, 0)}
