"""When two feature values are the same value: one rule for every comparison the
API makes (a served value against a captured one, one pipeline's against another's)."""

from __future__ import annotations

import math

from faro.api.models import Value


def same_value(a: Value, b: Value, *, abs_tol: float, rel_tol: float) -> bool:
    """Numbers (booleans as 0 and 1) within the tolerances, as ``math.isclose``; NaN
    equal to NaN; vectors element by element; anything else exactly. A model that
    logs a boolean feature as 0/1 matches."""
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        x, y = float(a), float(b)
        if math.isnan(x) or math.isnan(y):
            return math.isnan(x) and math.isnan(y)
        return math.isclose(x, y, rel_tol=rel_tol, abs_tol=abs_tol)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(
            same_value(x, y, abs_tol=abs_tol, rel_tol=rel_tol) for x, y in zip(a, b, strict=True)
        )
    return type(a) is type(b) and a == b


def abs_diff(a: Value, b: Value) -> float | None:
    """|a - b| for two numbers, else None."""
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return abs(float(a) - float(b))
    return None
