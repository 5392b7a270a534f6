"""One feature as two window operators computed it, window by window.

Record by record needs entity values, which PERSONAL and SENSITIVE features never
have, and aggregate-only features neither. A window operator reports each fire
(one per key and subtask in Flink) with its window's bounds, records in and out,
and the feature's value statistics. Summed per window they no longer depend on
keys or parallelism, so two versions of a pipeline that window alike can be
set side by side: the same window should have the same counts and the same
statistics, and no entity data is needed to tell.
"""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException

from faro.api.compare import Comparison, require_two, sides
from faro.api.deps import Service, unknown
from faro.api.equality import same_value
from faro.api.models import ComparedWindow, WindowComparison, WindowMeasures

COUNTS = ("input_count", "output_count", "values", "nulls")
"""Compared exactly."""
NUMBERS = ("sum", "min", "max")
"""Compared within the tolerances: a sum depends on the order it was added in."""


def compare_window_fires(svc: Service, feature: str, q: Comparison) -> WindowComparison:
    """Two queries (the windows joined, and how far each side has got) after finding
    the window operators; one more to name a misspelled feature."""
    against, since, until = sides(svc, q)
    a_op = _window_operator(svc, q.pipeline_id, feature, q.operator_id, since, "operator_id")
    b_op = _window_operator(svc, against, feature, q.against_operator_id, since,
                            "against_operator_id")  # fmt: skip
    require_two(q.pipeline_id, a_op, against, b_op)
    rows, newest = svc.queries.compared_windows(
        ((q.pipeline_id, a_op), (against, b_op)), feature, since, until
    )
    compared, mismatches, one_sided = 0, [], []
    only = {"a": 0, "b": 0}
    pending = 0
    differing = dict.fromkeys(COUNTS + NUMBERS, 0)
    for row in rows:
        a, b = _measures(row, "a"), _measures(row, "b")
        if a is not None and b is not None:
            compared += 1
            differs = [m for m in COUNTS if getattr(a, m) != getattr(b, m)] + [
                m for m in NUMBERS
                if not same_value(getattr(a, m), getattr(b, m), abs_tol=q.abs_tol,
                                  rel_tol=q.rel_tol)
            ]  # fmt: skip
            for m in differs:
                differing[m] += 1
            if differs:
                mismatches.append(_window(row, a, b, differs))
            continue
        side, other_newest = ("a", newest[1]) if a is not None else ("b", newest[0])
        if other_newest is not None and row["window_end"] > other_newest:
            pending += 1
        else:
            only[side] += 1
            one_sided.append(_window(row, a, b, []))
    return WindowComparison(
        feature=feature, pipeline_id=q.pipeline_id, operator_id=a_op, against=against,
        against_operator_id=b_op, window=q.window, since=since, until=until,
        compared=compared, matched=compared - len(mismatches), mismatched=len(mismatches),
        mismatch_rate=len(mismatches) / compared if compared else None, differing=differing,
        only_in_pipeline=only["a"], only_in_against=only["b"], pending=pending,
        mismatches=mismatches[: q.limit], one_sided=one_sided[: q.limit],
    )  # fmt: skip


def _measures(row: dict[str, Any], side: str) -> WindowMeasures | None:
    if row[f"{side}_last_fire"] is None:
        return None
    return WindowMeasures(**{m: row[f"{side}_{m}"] for m in WindowMeasures.model_fields})


def _window(
    row: dict[str, Any], a: WindowMeasures | None, b: WindowMeasures | None, differs: list[str]
) -> ComparedWindow:
    return ComparedWindow(window_start=row["window_start"], window_end=row["window_end"],
                          pipeline=a, against=b, differs=differs)  # fmt: skip


def _window_operator(
    svc: Service,
    pipeline_id: str,
    feature: str,
    given: str | None,
    since: int,
    parameter: str,
) -> str:
    """The window operator whose windows to compare: the one named, or the only one
    that reported the feature for windows ending in the window."""
    found = svc.queries.feature_window_operators(pipeline_id, feature, since)
    if given in found or (given is None and len(found) == 1):
        return given or found[0]
    if found and given is None:
        raise HTTPException(
            422,
            f"pipeline {pipeline_id!r} reports {feature!r} from window operators "
            f"{', '.join(found)}: choose one with {parameter}=",
        )
    ever = svc.queries.feature_window_operators(pipeline_id, feature)
    if given is not None and given in ever:
        return given  # a known window operator with no window in the window
    if given is not None:
        raise unknown(
            f"window operator reporting {feature!r} in pipeline {pipeline_id!r}:", given, ever
        )
    if ever:
        raise HTTPException(
            422,
            f"no window of pipeline {pipeline_id!r} that reports {feature!r} ended in the "
            f"window: widen window=, move until=, or name the operator with {parameter}=",
        )
    catalog = [f["name"] for f in svc.queries.feature_catalog(pipeline_id)]
    if feature not in catalog:
        raise unknown(f"feature of pipeline {pipeline_id!r}:", feature, sorted(catalog))
    raise HTTPException(
        422,
        f"no window operator of pipeline {pipeline_id!r} reports {feature!r} (AGGREGATE "
        "events with window bounds that list it): compare its records with "
        f"/features/{feature}/compare instead",
    )
