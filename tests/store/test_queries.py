"""The store's own summary arithmetic, against numpy's."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from faro.store.queries import _interpolated

values = st.lists(st.floats(-1e9, 1e9), min_size=1, max_size=300)


@given(values, st.lists(st.floats(0, 1), min_size=1, max_size=5))
def test_percentiles_interpolate_as_numpy_does(xs: list[float], qs: list[float]) -> None:
    x = np.array(xs)
    expected = np.quantile(x, qs)  # linear interpolation between closest ranks
    assert np.allclose(_interpolated(x.copy(), tuple(qs)), expected, rtol=1e-12, atol=1e-6)
