"""Training/serving skew: what a model was served against what the pipeline held.

A model's log says which value it read for an entity at a moment. faro's
capture says which value the pipeline had processed for that entity by then.
Where they differ, the serving path (an online store, a cache, a copy) did not
hand over what the pipeline computed; where the served value is one the
pipeline had replaced earlier, the serving path lags the pipeline, and by how
much is the answer to "since when was this model fed stale features".
"""

from __future__ import annotations

import itertools
import math
from typing import Any

from faro.api.models import FeatureValue, ServedValue, SkewHour, SkewRow, Value

HOUR_MS = 3_600_000


def same_value(served: Value, captured: Value, *, abs_tol: float, rel_tol: float) -> bool:
    """Whether the served value is the captured one: numbers (booleans as 0 and 1)
    within the tolerances, NaN equal to NaN, vectors element by element, anything
    else exactly. A model that logs a boolean feature as 0/1 matches."""
    if isinstance(served, (int, float)) and isinstance(captured, (int, float)):
        a, b = float(served), float(captured)
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return math.isclose(a, b, rel_tol=rel_tol, abs_tol=abs_tol)
    if isinstance(served, list) and isinstance(captured, list):
        return len(served) == len(captured) and all(
            same_value(a, b, abs_tol=abs_tol, rel_tol=rel_tol)
            for a, b in zip(served, captured, strict=True)
        )
    return type(served) is type(captured) and served == captured


def abs_diff(served: Value, captured: Value) -> float | None:
    if isinstance(served, (int, float)) and isinstance(captured, (int, float)):
        return abs(float(served) - float(captured))
    return None


def current(rows: list[dict[str, Any]], operator_id: str | None) -> dict[str, Any] | None:
    """The captured value to compare with: the asked operator's, or the one processed
    last (the as-of rows come one per operator); equal times go to the operator id
    that sorts last, so the choice does not depend on the store's file order."""
    if operator_id is not None:
        rows = [r for r in rows if r["operator_id"] == operator_id]
    return max(rows, key=lambda r: (r["processing_time"], r["operator_id"]), default=None)


def mismatch(
    index: int,
    row: ServedValue,
    at: int,
    captured: dict[str, Any],
    history: list[dict[str, Any]],
    *,
    abs_tol: float,
    rel_tol: float,
) -> SkewRow:
    """One mismatched row. ``history``: the operator's values for the entity up to
    ``at``, newest first; the newest that equals the served value tells when the
    pipeline produced it, and the value after it since when it was outdated."""
    value = FeatureValue.from_row(captured)
    produced = replaced = None
    for newer, older in itertools.pairwise(history):
        if same_value(row.value, FeatureValue.from_row(older).value,
                      abs_tol=abs_tol, rel_tol=rel_tol):  # fmt: skip
            produced, replaced = older["processing_time"], newer["processing_time"]
            break
    return SkewRow(
        index=index,
        entity_id=row.entity_id,
        at=at,
        served=row.value,
        captured=value,
        abs_diff=abs_diff(row.value, value.value),
        served_processed_at=produced,
        outdated_ms=None if replaced is None else at - replaced,
    )


def hours(ats: list[int], compared: list[int], mismatches: list[SkewRow]) -> list[SkewHour]:
    """The rows per UTC hour of their ``at``, oldest first: when the serving path went
    wrong. ``compared``: the positions of the rows that had a captured value."""
    counts: dict[int, list[int]] = {}

    def hour(at: int) -> list[int]:
        return counts.setdefault(at - at % HOUR_MS, [0, 0, 0, 0])

    for at in ats:
        hour(at)[0] += 1
    for i in compared:
        hour(ats[i])[1] += 1
    for m in mismatches:
        counts_of = hour(m.at)
        counts_of[2] += 1
        counts_of[3] += m.served_processed_at is not None
    return [
        SkewHour(start=start, rows=rows, compared=n, mismatched=bad, outdated=old)
        for start, (rows, n, bad, old) in sorted(counts.items())
    ]
