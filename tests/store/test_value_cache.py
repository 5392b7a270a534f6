"""Value summaries from the per-file value cache equal the values the test put there."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from faro.store.queries import StoreQueries
from tests.api.dataset import MIN, Dataset, generate
from tests.store.events import write_parts

FEATURE, PIPELINE = "purchase_amount_7d", "user-feature-pipeline"


@pytest.fixture
def store(tmp_path: Path) -> tuple[Path, Dataset]:
    ds = generate()
    write_parts(tmp_path, ds.events, range(3), of=3)  # all of it, three files per partition
    return tmp_path, ds


def truth(ds: Dataset, since: int, until: int) -> np.ndarray:
    return np.sort([
        e.feature_value for e in ds.entities(feature_name=FEATURE, pipeline_id=PIPELINE)
        if since <= e.processing_time < until and e.feature_value is not None
    ])  # fmt: skip


def windows(ds: Dataset) -> list[tuple[int, int]]:
    # none on a whole minute, one reaching past the newest event
    return [(ds.now - 50 * MIN + 17, ds.now + 1), (ds.now - 80 * MIN - 3, ds.now - 21 * MIN + 5)]


def test_values_between_any_bounds_are_those_of_the_window(store: tuple[Path, Dataset]) -> None:
    data_dir, ds = store
    q = StoreQueries(data_dir)
    assert q.values is not None
    files = q._files("ENTITY", PIPELINE)
    for since, until in windows(ds):
        expected = truth(ds, since, until)
        assert expected.size > 50
        assert np.array_equal(np.sort(q.values.between(FEATURE, files, since, until)), expected)
    assert q.values.files.held == truth(ds, 0, ds.now + 1).size  # each value held once


def test_summaries_from_the_cache_equal_a_scan_even_when_it_evicts(
    store: tuple[Path, Dataset],
) -> None:
    data_dir, ds = store
    cached, scanned = StoreQueries(data_dir), StoreQueries(data_dir, caches=False)
    assert cached.values is not None
    cached.values.files.max_size = 100
    for since, until in windows(ds):
        summary = cached.entity_summary(FEATURE, PIPELINE, since, until)
        expected = scanned.entity_summary(FEATURE, PIPELINE, since, until)
        # values are added in another order: sums may differ in the last bit
        assert summary.keys() == expected.keys()
        assert all(summary[k] == pytest.approx(v, rel=1e-12) for k, v in expected.items())
        assert summary["quantiles"][0] == pytest.approx(np.quantile(truth(ds, since, until), 0.5))
        assert cached.values.files.held <= max(100, cached.values.files.largest)
