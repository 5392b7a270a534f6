"""One feature as two operators computed it, record by record.

A new version of a pipeline runs in shadow beside the one in production, or an
operator is rewritten: before the new one feeds a model, its values should be
the old one's for every record. faro can pair the two without any id they
share. Sampling is a hash of the entity id, the same in every pipeline, so both
capture the same entities. A record is the same record on both sides when its
entity and its event time are (a window's result carries the window's last
millisecond), so the two join on (entity_id, event_time).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from fastapi import Depends, HTTPException, Query

from faro.api.deps import (
    Service,
    Until,
    now_ms,
    require_entity_values,
    require_pipeline,
    unknown,
    window_end,
)
from faro.api.equality import abs_diff, same_value
from faro.api.models import (
    ComparisonHour,
    DifferentRecord,
    FeatureComparison,
    OneSidedRecord,
    typed_value,
)
from faro.core.sampling import is_sampled
from faro.core.windows import window_ms

HOUR_MS = 3_600_000
_VALUE_COLUMNS = ("feature_value", "feature_value_long", "feature_value_bool",
                  "feature_value_string", "feature_value_vector")  # fmt: skip


@dataclass
class Comparison:
    """What ``GET /features/{feature}/compare`` (and ``/compare/windows``) asks."""

    pipeline_id: str
    against: str | None
    operator_id: str | None
    against_operator_id: str | None
    window: str
    until: int | None
    abs_tol: float
    rel_tol: float
    limit: int


def comparison(
    pipeline_id: str,
    against: Annotated[
        str | None, Query(description="the other pipeline (default: `pipeline_id`)")
    ] = None,
    operator_id: Annotated[
        str | None,
        Query(description="`pipeline_id`'s operator (default: the only one with values)"),
    ] = None,
    against_operator_id: Annotated[
        str | None,
        Query(description="`against`'s operator (default: the only one with values)"),
    ] = None,
    window: Annotated[
        str, Query(description="records with event times (windows with ends) in this window")
    ] = "1h",
    until: Until = None,
    abs_tol: Annotated[float, Query(ge=0, description="numbers within this match")] = 1e-9,
    rel_tol: Annotated[
        float, Query(ge=0, description="... or within this fraction of the larger one")
    ] = 1e-9,
    limit: Annotated[int, Query(ge=0, le=10_000, description="records listed")] = 100,
) -> Comparison:
    return Comparison(pipeline_id, against, operator_id, against_operator_id, window,
                      window_end(until), abs_tol, rel_tol, limit)  # fmt: skip


ComparisonDep = Annotated[Comparison, Depends(comparison)]


def sides(svc: Service, q: Comparison) -> tuple[str, int, int]:
    """The other pipeline (both known), and where the window starts and ends, epoch ms."""
    against = q.against or q.pipeline_id
    require_pipeline(svc, q.pipeline_id)
    require_pipeline(svc, against)
    until = now_ms() if q.until is None else q.until
    return against, until - window_ms(q.window), until


def require_two(pipeline_id: str, operator_id: str, against: str, against_operator_id: str) -> None:
    if (pipeline_id, operator_id) == (against, against_operator_id):
        raise HTTPException(
            422,
            f"both sides are operator {operator_id!r} of pipeline {against!r}: name another "
            "pipeline with against= or another operator with against_operator_id=",
        )


def compare_records(svc: Service, feature: str, q: Comparison) -> FeatureComparison:
    """Two queries (the records joined, and how far each side has got) after the
    operators' sample rates; one more to name a misspelled feature."""
    against, since, until = sides(svc, q)
    a_rates = svc.queries.sample_rates(q.pipeline_id, feature, since)
    b_rates = a_rates if against == q.pipeline_id else svc.queries.sample_rates(
        against, feature, since
    )  # fmt: skip
    a_op = _operator(svc, q.pipeline_id, feature, q.operator_id, a_rates, "operator_id")
    b_op = _operator(svc, against, feature, q.against_operator_id, b_rates, "against_operator_id")
    require_two(q.pipeline_id, a_op, against, b_op)
    table, (a_newest, b_newest) = svc.queries.compared_records(
        ((q.pipeline_id, a_op), (against, b_op)), feature, since, until
    )
    rates = (a_rates.get(a_op), b_rates.get(b_op))
    records = _Records(table, q.abs_tol, q.rel_tol)
    only_a, pending_a, unsampled_a = records.one_sided("a", b_newest, rates[1], rates[0])
    only_b, pending_b, unsampled_b = records.one_sided("b", a_newest, rates[0], rates[1])
    mismatched = records.both & ~records.same
    n, bad = int(records.both.sum()), int(mismatched.sum())
    delays = records.delays()
    return FeatureComparison(
        feature=feature, pipeline_id=q.pipeline_id, operator_id=a_op, against=against,
        against_operator_id=b_op, window=q.window, since=since, until=until,
        sample_rate=rates[0], against_sample_rate=rates[1], compared=n, matched=n - bad,
        mismatched=bad, mismatch_rate=bad / n if n else None,
        max_abs_diff=records.largest_difference(mismatched), mean_diff=records.mean_diff,
        only_in_pipeline=int(only_a.sum()), only_in_against=int(only_b.sum()),
        pending=int(pending_a.sum() + pending_b.sum()),
        out_of_sample=int(unsampled_a.sum() + unsampled_b.sum()),
        delay_p50_ms=float(np.percentile(delays, 50)) if delays.size else None,
        delay_p95_ms=float(np.percentile(delays, 95)) if delays.size else None,
        hours=records.hours(records.both, mismatched, only_a, only_b),
        mismatches=records.mismatches(mismatched, q.limit),
        one_sided=records.one_sided_rows(only_a, only_b, q.limit),
    )  # fmt: skip


def _operator(
    svc: Service,
    pipeline_id: str,
    feature: str,
    given: str | None,
    rates: dict[str, float],
    parameter: str,
) -> str:
    """The operator whose values to compare: the one named, or the only one that
    captured the feature in the window."""
    if given is not None:
        if given not in rates:  # none in the window; maybe ever
            ever = svc.queries.sample_rates(pipeline_id, feature)
            if given not in ever:
                raise unknown(
                    f"operator with ENTITY values of {feature!r} in pipeline {pipeline_id!r}:",
                    given, sorted(ever),
                )  # fmt: skip
        return given
    if len(rates) == 1:
        return next(iter(rates))
    if rates:
        raise HTTPException(
            422,
            f"pipeline {pipeline_id!r} captures {feature!r} at operators "
            f"{', '.join(sorted(rates))}: choose one with {parameter}=",
        )
    require_entity_values(svc, pipeline_id, feature)
    raise HTTPException(
        422,
        f"pipeline {pipeline_id!r} captured no ENTITY values of {feature!r} in the window: "
        f"widen window=, move until=, or name the operator with {parameter}=",
    )


class _Records:
    """The joined records as columns. Where both sides hold doubles (most features)
    the values compare in numpy; any other pair goes through :func:`same_value`."""

    def __init__(self, table: pa.Table, abs_tol: float, rel_tol: float) -> None:
        self.table = table
        self.n = table.num_rows
        self.event_time = table.column("event_time").to_numpy()
        self.processed = {
            s: table.column(f"{s}_processing_time").fill_null(0).to_numpy() for s in "ab"
        }
        self.has = {s: _mask(pc.is_valid(table.column(f"{s}_processing_time"))) for s in "ab"}
        self.both = self.has["a"] & self.has["b"]
        doubles = self.both.copy()
        for s in "ab":
            doubles &= _mask(pc.equal(table.column(f"{s}_value_type"), "SCALAR_DOUBLE"))
        a, b = (table.column(f"{s}_feature_value") for s in "ab")
        a_null, b_null = _mask(pc.is_null(a)), _mask(pc.is_null(b))
        x, y = a.fill_null(0.0).to_numpy(), b.fill_null(0.0).to_numpy()
        with np.errstate(invalid="ignore"):  # inf - inf: equal infinities match by ==
            self.diff = np.abs(x - y)
            close = (x == y) | (self.diff <= np.maximum(
                rel_tol * np.maximum(np.abs(x), np.abs(y)), abs_tol
            ))  # fmt: skip
        close |= np.isnan(x) & np.isnan(y)
        self.same = doubles & ((a_null & b_null) | (~a_null & ~b_null & close))
        self.numbers = doubles & ~a_null & ~b_null  # where self.diff is |a - b|
        self.doubles = doubles
        with np.errstate(invalid="ignore"):
            signed = (y - x)[self.numbers]
        differences = signed[np.isfinite(signed)].tolist()
        others = np.flatnonzero(self.both & ~doubles)
        for i, va, vb in zip(others, self.values("a", others), self.values("b", others),
                             strict=True):  # fmt: skip
            self.same[i] = same_value(va, vb, abs_tol=abs_tol, rel_tol=rel_tol)
            if isinstance(va, (int, float)) and isinstance(vb, (int, float)):
                d = float(vb) - float(va)
                differences += [d] if math.isfinite(d) else []
        # b - a, on average over the records both captured as finite numbers; fsum is
        # exact, so the answer does not depend on the order the join returns rows in
        self.mean_diff = math.fsum(differences) / len(differences) if differences else None

    def values(self, side: str, rows: np.ndarray) -> list[Any]:
        """``side``'s values of the records at positions ``rows``, as their types hold them."""
        columns = [
            f"{side}_{c}" for c in _VALUE_COLUMNS if f"{side}_{c}" in self.table.column_names
        ]
        picked = self.table.select(columns).take(pa.array(rows, pa.int64())).to_pylist()
        return [typed_value({k[2:]: v for k, v in row.items()}) for row in picked]

    def entities(self, rows: np.ndarray) -> list[str]:
        return self.table.column("entity_id").take(pa.array(rows, pa.int64())).to_pylist()

    def one_sided(
        self, side: str, other_newest: int | None, other_rate: float | None, rate: float | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Of the records only ``side`` captured: those the other side should have
        (missing there), those later than anything it has captured yet (pending),
        and those of entities it does not sample."""
        other = "b" if side == "a" else "a"
        alone = self.has[side] & ~self.has[other]
        unsampled = np.zeros(self.n, bool)
        if other_rate is not None and rate is not None and other_rate < rate:
            rows = np.flatnonzero(alone)
            kept: dict[str, bool] = {}
            for i, e in zip(rows, self.entities(rows), strict=True):
                if e not in kept:
                    kept[e] = is_sampled(e, other_rate)
                unsampled[i] = not kept[e]
        pending = alone & ~unsampled
        if other_newest is not None:
            pending &= self.event_time > other_newest
        return alone & ~unsampled & ~pending, pending, unsampled

    def largest_difference(self, mismatched: np.ndarray) -> float | None:
        """The largest |a - b| of mismatched numbers (NaN against a number has none)."""
        diffs = self.diff[mismatched & self.numbers]
        diffs = diffs[~np.isnan(diffs)]
        others = np.flatnonzero(mismatched & ~self.doubles)
        found = [
            abs_diff(va, vb)
            for va, vb in zip(self.values("a", others), self.values("b", others), strict=True)
        ]
        found += [float(diffs.max())] if diffs.size else []
        return max((d for d in found if d is not None and not math.isnan(d)), default=None)

    def first(self, mask: np.ndarray, limit: int) -> np.ndarray:
        """The positions of the first ``limit`` records of ``mask`` by event time, then
        entity: the query leaves the joined rows unordered, as sorting them all cost
        more than the join (0.5 s of 1.1 at 560,000 records)."""
        rows = np.flatnonzero(mask)
        if rows.size <= 1 or limit == 0:
            return rows[:limit]
        entities = self.table.column("entity_id").take(pa.array(rows, pa.int64()))
        keys = pa.table({"event_time": self.event_time[rows], "entity_id": entities})
        order = pc.select_k_unstable(
            keys, k=min(limit, rows.size),
            sort_keys=[("event_time", "ascending"), ("entity_id", "ascending")],
        )  # fmt: skip
        return rows[order.to_numpy()]

    def mismatches(self, mismatched: np.ndarray, limit: int) -> list[DifferentRecord]:
        rows = self.first(mismatched, limit)
        a, b = self.values("a", rows), self.values("b", rows)
        return [
            DifferentRecord(
                entity_id=e, event_time=int(self.event_time[i]), value=a[k], against_value=b[k],
                abs_diff=abs_diff(a[k], b[k]), processed_at=int(self.processed["a"][i]),
                against_processed_at=int(self.processed["b"][i]),
            )
            for k, (i, e) in enumerate(zip(rows, self.entities(rows), strict=True))
        ]  # fmt: skip

    def delays(self) -> np.ndarray:
        """``b``'s processing time minus ``a``'s, per record both captured."""
        return (self.processed["b"] - self.processed["a"])[self.both].astype(float)

    def hours(self, *masks: np.ndarray) -> list[ComparisonHour]:
        """The counts of ``masks`` per UTC hour of event time, for the hours any has."""
        if not self.n:
            return []
        hour = self.event_time // HOUR_MS
        first = int(hour.min())
        hour -= first
        counts = np.stack([np.bincount(hour[m], minlength=hour.max() + 1) for m in masks])
        fields = ("compared", "mismatched", "only_in_pipeline", "only_in_against")
        return [
            ComparisonHour(start=(first + int(h)) * HOUR_MS,
                           **{f: int(c) for f, c in zip(fields, counts[:, h], strict=True)})
            for h in np.flatnonzero(counts.sum(axis=0))
        ]  # fmt: skip

    def one_sided_rows(
        self, only_a: np.ndarray, only_b: np.ndarray, limit: int
    ) -> list[OneSidedRecord]:
        rows = self.first(only_a | only_b, limit)
        values = {s: self.values(s, rows) for s in "ab"}
        return [
            OneSidedRecord(
                entity_id=e, event_time=int(self.event_time[i]),
                side="pipeline" if only_a[i] else "against",
                value=values["a" if only_a[i] else "b"][k],
                processed_at=int(self.processed["a" if only_a[i] else "b"][i]),
            )
            for k, (i, e) in enumerate(zip(rows, self.entities(rows), strict=True))
        ]  # fmt: skip


def _mask(array: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A boolean Arrow column as numpy, null as False."""
    return np.asarray(array.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)
