"""Which windows of a window operator never fired.

Time windows of one operator share a length and start on a fixed grid (every
``size`` for tumbling windows, every ``slide`` for sliding ones), so the
windows that fired give the grid, and a point of it between the first and
the last window with no fire is a missing window: an event-time range in
which the operator fired for no key at all, because no record arrived for
it (or every one arrived late and was dropped). Nothing here reads the store.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

# A grid this fine over the span (say, one-second windows over a month) is listed no more.
MAX_GRID_POINTS = 1_000_000


@dataclass
class Cadence:
    length_ms: int | None  # None when the windows differ in length
    step_ms: int | None  # distance between consecutive window starts on the grid
    missing: list[tuple[int, int]] = field(default_factory=list)  # (start, end), oldest first
    note: str | None = None  # why missing windows were not looked for


def cadence(windows: list[tuple[int, int]]) -> Cadence:
    """``windows``: the (start, end) of each distinct window that fired, any order."""
    lengths = {end - start for start, end in windows}
    if len(lengths) != 1:
        return Cadence(
            None, None,
            note="the windows differ in length (session windows, or Spark micro-batches "
            "spanning several windows), so there is no grid to find missing windows on",
        )  # fmt: skip
    (length,) = lengths
    if length <= 0:
        return Cadence(None, None, note="the windows end where (or before) they start")
    starts = sorted({start for start, _ in windows})
    # gcd() of nothing is 0: a single window, assumed tumbling
    step = math.gcd(*(b - a for a, b in itertools.pairwise(starts))) or length
    if (starts[-1] - starts[0]) // step > MAX_GRID_POINTS:
        return Cadence(length, step, note=f"more than {MAX_GRID_POINTS:,} windows to check")
    fired = set(starts)
    missing = [
        (s, s + length) for s in range(starts[0], starts[-1], step) if s not in fired
    ]  # fmt: skip
    return Cadence(length, step, missing)
