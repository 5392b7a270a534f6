"""The store's own summary arithmetic, against numpy's; how queries are run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from faro.store.queries import StoreQueries, _interpolated

values = st.lists(st.floats(-1e9, 1e9), min_size=1, max_size=300)


@given(values, st.lists(st.floats(0, 1), min_size=1, max_size=5))
def test_percentiles_interpolate_as_numpy_does(xs: list[float], qs: list[float]) -> None:
    x = np.array(xs)
    expected = np.quantile(x, qs)  # linear interpolation between closest ranks
    assert np.allclose(_interpolated(x.copy(), tuple(qs)), expected, rtol=1e-12, atol=1e-6)


def test_every_query_cursor_caches_parquet_footers(tmp_path: Path) -> None:
    """Queries run on cursors of their own; the footer cache must hold for those."""
    queries = StoreQueries(tmp_path)
    cursor = queries._cursor()
    setting = cursor.execute("SELECT current_setting('parquet_metadata_cache')").fetchone()
    assert setting == (True,)
