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
from typing import Any

from faro.api.deps import (
    AsOfQuery,
    Service,
    require_entity_values,
    require_operator,
    require_pipeline,
    values_as_of_many,
)
from faro.api.equality import abs_diff, same_value
from faro.api.models import (
    FeatureValue,
    MissingRow,
    ServedValue,
    SkewCheck,
    SkewHour,
    SkewReport,
    SkewRow,
)
from faro.core.sampling import is_sampled

HOUR_MS = 3_600_000


def check(svc: Service, feature: str, body: SkewCheck) -> SkewReport:
    """``POST /features/{feature}/skew``: three queries at most, whatever the number
    of rows (the rows' values at their moments, the mismatched rows' histories, and
    the sample rate when some rows have no captured value)."""
    require_pipeline(svc, body.pipeline_id)
    queries, found = values_as_of_many(
        svc, body.rows, "rows", by="processing", known_at=None, lookback=body.lookback,
        pipeline_id=body.pipeline_id, features=[feature],
    )  # fmt: skip
    if not any(found):
        require_entity_values(svc, body.pipeline_id, feature)
    if body.operator_id is not None and not any(
        r["operator_id"] == body.operator_id for rows in found for r in rows
    ):
        require_operator(svc, body.pipeline_id, body.operator_id)
    tolerances = {"abs_tol": body.abs_tol, "rel_tol": body.rel_tol}
    differ, compared = [], []
    for i, (row, rows) in enumerate(zip(body.rows, found, strict=True)):
        captured = _current(rows, body.operator_id)
        if captured is None:
            continue
        compared.append(i)
        if not same_value(row.value, FeatureValue.from_row(captured).value, **tolerances):
            differ.append((i, captured))
    histories = svc.queries.entity_histories_many(
        [(body.rows[i].entity_id, c["operator_id"], queries[i].since, queries[i].at)
         for i, c in differ],
        pipeline_id=body.pipeline_id, feature=feature,
    )  # fmt: skip
    mismatches = [
        _mismatch(i, body.rows[i], queries[i].at, captured, history, **tolerances)
        for (i, captured), history in zip(differ, histories, strict=True)
    ]
    rate, missing = _sampling(svc, body, feature, queries, set(compared))
    n = len(compared)
    return SkewReport(
        feature=feature, pipeline_id=body.pipeline_id, operator_id=body.operator_id,
        lookback=body.lookback, rows=len(body.rows), compared=n,
        matched=n - len(mismatches), mismatched=len(mismatches),
        outdated=sum(m.served_processed_at is not None for m in mismatches),
        not_captured=len(body.rows) - n, sample_rate=rate,
        not_sampled=None if rate is None else len(body.rows) - n - len(missing),
        mismatch_rate=len(mismatches) / n if n else None,
        hours=_hours([q.at for q in queries], compared, mismatches),
        mismatches=mismatches, missing=missing,
    )  # fmt: skip


def _current(rows: list[dict[str, Any]], operator_id: str | None) -> dict[str, Any] | None:
    """The captured value to compare with: the asked operator's, or the one processed
    last (the as-of rows come one per operator); equal times go to the operator id
    that sorts last, so the choice does not depend on the store's file order."""
    if operator_id is not None:
        rows = [r for r in rows if r["operator_id"] == operator_id]
    return max(rows, key=lambda r: (r["processing_time"], r["operator_id"]), default=None)


def _mismatch(
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


def _hours(ats: list[int], compared: list[int], mismatches: list[SkewRow]) -> list[SkewHour]:
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


def _sampling(
    svc: Service, body: SkewCheck, feature: str, queries: list[AsOfQuery], compared: set[int]
) -> tuple[float | None, list[MissingRow]]:
    """The sample rate, and the rows without a captured value whose entity the
    sampling hash keeps: those the pipeline should have captured. The rate comes
    from the events processed over the rows' lookback, so a rate changed since
    does not count; without any there, from all of the feature's events."""
    absent = [i for i in range(len(body.rows)) if i not in compared]
    if not absent:
        return None, []
    since, until = min(queries[i].since for i in absent), max(queries[i].at for i in absent)
    rates = svc.queries.sample_rates(body.pipeline_id, feature, since, until)
    rates = rates or svc.queries.sample_rates(body.pipeline_id, feature)
    rate = rates.get(body.operator_id) if body.operator_id else max(rates.values(), default=None)
    if rate is None:
        return None, []
    missing = [
        MissingRow(index=i, entity_id=body.rows[i].entity_id, at=queries[i].at)
        for i in absent if is_sampled(body.rows[i].entity_id, rate)
    ]  # fmt: skip
    return rate, missing
