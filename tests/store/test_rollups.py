"""Per-file rollups answer feature windows exactly as a scan of the events does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from faro.store.maintenance import compact
from faro.store.queries import StoreQueries
from faro.store.rollups import MINUTE_MS, next_minute
from tests.api.dataset import Dataset, generate
from tests.store.events import write_parts

PIPELINES = {"order-pipeline": "revenue", "user-feature-pipeline": "purchase_amount_7d"}


def answers(q: StoreQueries, since: int, until: int, bucket: int) -> list[Any]:
    out: list[Any] = []
    for pipeline, feature in PIPELINES.items():
        out += [
            q.feature_flow(feature, pipeline, since, until, bucket),
            q.feature_entities(feature, pipeline, since, until, bucket),
            q.aggregate_summary(feature, pipeline, since, until),
            q.entity_summary(feature, pipeline, since, until),
        ]
    out += [q.feature_catalog(pipeline) for pipeline in PIPELINES]
    return _rounded(out)


def _rounded(x: Any) -> Any:
    if isinstance(x, float):
        return round(x, 6)
    if isinstance(x, dict):
        return {k: _rounded(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_rounded(v) for v in x]
    return x


def windows(ds: Dataset) -> list[tuple[int, int, int]]:
    until = next_minute(ds.now)
    return [(until - 60 * MINUTE_MS, until, 5 * MINUTE_MS),
            (until - 120 * MINUTE_MS, until - 24 * MINUTE_MS, 8 * MINUTE_MS)]  # fmt: skip


@pytest.fixture
def store(tmp_path: Path) -> tuple[Path, Dataset]:
    ds = generate()
    write_parts(tmp_path, ds.events, range(3), of=4)  # three files per partition
    return tmp_path, ds


def test_rollups_agree_with_the_events_as_files_come_and_go(store: tuple[Path, Dataset]) -> None:
    data_dir, ds = store
    rolled, scanned = StoreQueries(data_dir), StoreQueries(data_dir, caches=False)
    for w in windows(ds):
        first = answers(rolled, *w)
        assert first == answers(scanned, *w)
        assert any(row["input_count"] for row in first[0])  # the windows hold flows
        assert any(row["values"] for row in first[5])  # ... and values
    assert rolled.rollups is not None and rolled.rollups.files.held > 0

    write_parts(data_dir, ds.events, [3], of=4)  # a new file
    compacted_before = [answers(scanned, *w) for w in windows(ds)]
    assert [answers(rolled, *w) for w in windows(ds)] == compacted_before
    compact(data_dir)  # every file replaced by one per partition
    assert [answers(rolled, *w) for w in windows(ds)] == compacted_before


def test_a_full_cache_evicts_and_still_answers(store: tuple[Path, Dataset]) -> None:
    data_dir, ds = store
    rolled, scanned = StoreQueries(data_dir), StoreQueries(data_dir, caches=False)
    assert rolled.rollups is not None
    rolled.rollups.files.max_size = 50
    for w in windows(ds):
        assert answers(rolled, *w) == answers(scanned, *w)
        assert rolled.rollups.files.held <= max(50, rolled.rollups.files.largest)


def test_windows_off_the_minute_are_scanned(store: tuple[Path, Dataset]) -> None:
    data_dir, ds = store
    rolled = StoreQueries(data_dir)
    since = ds.now - 50 * MINUTE_MS
    rows = rolled.feature_entities("purchase_amount_7d", "user-feature-pipeline", since,
                                   ds.now, 250_000)  # fmt: skip
    assert rows and rolled.rollups is not None and rolled.rollups.files.held == 0
