"""/features: what values a feature had, per entity and in summary."""

from __future__ import annotations

import math
from typing import Any, Literal

from fastapi import APIRouter

from faro.api.compare import ComparisonDep, compare_records
from faro.api.compare_windows import compare_window_fires
from faro.api.deps import (
    AsOf,
    ServiceDep,
    Until,
    now_ms,
    require_pipeline,
    unknown,
    window_bounds,
    window_end,
)
from faro.api.models import (
    Bucket,
    FeatureComparison,
    FeatureHealth,
    FeatureValue,
    FeatureValues,
    FeatureValuesAsOf,
    FeatureWindow,
    SkewCheck,
    SkewReport,
    ValueSummary,
    WindowComparison,
)
from faro.api.routers import violations
from faro.api.skew import check as skew_check
from faro.core.windows import shift_ms, window_ms
from faro.store.rollups import next_minute

router = APIRouter(prefix="/features", tags=["features"])


@router.get("/{feature}/values", response_model=FeatureValues)
def feature_values(
    svc: ServiceDep,
    feature: str,
    pipeline_id: str,
    entity_id: str,
    window: str = "1h",
    until: Until = None,
) -> FeatureValues:
    """The entity's sampled values within ``window`` (ending at ``until``), oldest first."""
    since, end = window_bounds(window, until)
    require_pipeline(svc, pipeline_id)
    rows = svc.queries.entity_values(feature, pipeline_id, entity_id, since, end)
    return FeatureValues(
        feature=feature,
        pipeline_id=pipeline_id,
        entity_id=entity_id,
        window=window,
        values=[FeatureValue.from_row(r) for r in rows],
    )


@router.get("/{feature}/values/as-of", response_model=FeatureValuesAsOf)
def feature_value_as_of(
    svc: ServiceDep, feature: str, pipeline_id: str, entity_id: str, q: AsOf
) -> FeatureValuesAsOf:
    """The entity's value at one moment, per operator: by processing time, what the
    pipeline held then (what a model reading the feature at ``at`` was served, as far
    as the sampled capture shows); by event time, the value for the latest event at
    or before ``at`` as it was known at ``known_at``, so a late correction made after
    ``known_at`` does not show."""
    require_pipeline(svc, pipeline_id)
    rows = svc.queries.entity_value_as_of(
        entity_id, q.at, by=q.by, known=q.known, since=q.since, pipeline_id=pipeline_id,
        feature=feature,
    )  # fmt: skip
    return FeatureValuesAsOf(
        feature=feature, pipeline_id=pipeline_id, entity_id=entity_id, at=q.at, by=q.by,
        known_at=q.known, since=q.since, values=[FeatureValue.from_row(r) for r in rows],
    )  # fmt: skip


@router.post("/{feature}/skew", response_model=SkewReport, responses={404: {}})
def skew(svc: ServiceDep, feature: str, body: SkewCheck) -> SkewReport:
    """A model's served values against what the pipeline held when the model read
    them (by processing time, as ``/values/as-of``): which entities were served
    something else, and which of those an outdated value, since when; rows without
    a captured value, split by the sampling hash into not sampled and missing."""
    return skew_check(svc, feature, body)


@router.get("/{feature}/compare", response_model=FeatureComparison, responses={404: {}})
def compare(svc: ServiceDep, feature: str, q: ComparisonDep) -> FeatureComparison:
    """One feature as two operators computed it (two versions of a pipeline, one in
    shadow; or two operators of one), record by record: the values of every record
    both captured, joined on entity and event time, and the records only one has."""
    return compare_records(svc, feature, q)


@router.get("/{feature}/compare/windows", response_model=WindowComparison, responses={404: {}})
def compare_windows(svc: ServiceDep, feature: str, q: ComparisonDep) -> WindowComparison:
    """The same, window by window, from what two window operators reported per window
    (records in and out, the feature's value statistics): no entity data needed, so
    it also compares PERSONAL and SENSITIVE features and aggregate-only ones."""
    return compare_window_fires(svc, feature, q)


@router.get("/{feature}/values/summary", response_model=ValueSummary)
def value_summary(
    svc: ServiceDep, feature: str, pipeline_id: str, window: str = "1h", until: Until = None
) -> ValueSummary:
    """From ENTITY values when there are any; otherwise from the AGGREGATE
    per-flush statistics (PERSONAL/SENSITIVE features), without percentiles.
    The window ends at the whole minute at or after ``until``, as in feature health."""
    end = _minute_end(until)
    since = end - window_ms(window)
    require_pipeline(svc, pipeline_id)
    base: dict[str, Any] = {"feature": feature, "pipeline_id": pipeline_id, "window": window,
                            "since": since, "until": end}  # fmt: skip
    entity = svc.queries.entity_summary(feature, pipeline_id, since, end)
    if entity["count"]:
        p50, p95, p99 = entity["quantiles"] or (None, None, None)
        return ValueSummary(
            **base, source="ENTITY", count=entity["count"], nulls=entity["nulls"],
            min=entity["min"], max=entity["max"], mean=entity["mean"],
            stddev=entity["stddev"], p50=p50, p95=p95, p99=p99,
        )  # fmt: skip
    agg = svc.queries.aggregate_summary(feature, pipeline_id, since, end)
    count, nulls = int(agg["count"]), int(agg["nulls"])
    values = count - nulls
    mean = stddev = None
    if values and agg["sum"] is not None:
        mean = agg["sum"] / values
        if values > 1 and agg["sum_sq"] is not None:
            variance = (agg["sum_sq"] - values * mean * mean) / (values - 1)
            stddev = math.sqrt(max(variance, 0.0))
    return ValueSummary(
        **base, source="AGGREGATE" if count else "NONE", count=count, nulls=nulls,
        min=agg["min"], max=agg["max"], mean=mean, stddev=stddev, p50=None, p95=None, p99=None,
    )  # fmt: skip


BUCKETS = 12
_DELTA_FIELDS = (
    "input_count", "output_count", "filter_ratio", "late_rate", "watermark_lag_seconds",
    "max_watermark_lag_seconds", "null_rate", "mean",
)  # fmt: skip


@router.get("/{feature}/health", response_model=FeatureHealth)
def feature_health(
    svc: ServiceDep,
    feature: str,
    pipeline_id: str,
    window: str = "1h",
    compare_to: str | None = None,
    distinct_entities: bool = False,
    until: Until = None,
) -> FeatureHealth:
    """The feature's flow over ``window`` in 12 buckets: counts in and out of the
    operators that compute it, filter ratio, late rate, watermark lag, null rate
    and mean; with ``compare_to=24h_ago`` (or ``7d_ago``) the same window shifted
    back, and the deltas. ``distinct_entities=true`` also counts the distinct
    entities per bucket, which reads every value of the window.

    The window ends at the whole minute at or after ``until`` (default: now):
    windows of a whole number of 12-minute steps (1h, 24h, 7d) then fall on minutes
    and are answered from the store's per-minute rollups. The violations listed are
    those open at the window's end."""
    span = window_ms(window)
    shift = shift_ms(compare_to) if compare_to else None
    require_pipeline(svc, pipeline_id)
    end = _minute_end(until)
    current = _window(svc, feature, pipeline_id, end - span, end, distinct_entities)
    if current.values_from == "NONE" and not (current.input_count or current.output_count):
        # Only an empty answer needs the (full-scan) list of known features.
        known = svc.queries.features(pipeline_id)
        if feature not in known:
            raise unknown(f"feature of pipeline {pipeline_id!r}:", feature, known)
    health = FeatureHealth(
        feature=feature, pipeline_id=pipeline_id, window=window,
        bucket_seconds=span / BUCKETS / 1000, current=current,
        open_violations=[v for v in violations.stored(svc, pipeline_id, feature)
                         if v.open_at(end)],
    )  # fmt: skip
    if shift is not None:
        previous = _window(
            svc, feature, pipeline_id, end - span - shift, end - shift, distinct_entities
        )
        health.compare_to = compare_to
        health.previous = previous
        health.deltas = {
            name: None
            if getattr(current, name) is None or getattr(previous, name) is None
            else getattr(current, name) - getattr(previous, name)
            for name in _DELTA_FIELDS
        }
    return health


def _minute_end(until: str | None) -> int:
    """Where a feature window ends: the whole minute at or after ``until`` (or now)."""
    end = window_end(until)
    return next_minute(now_ms() if end is None else end)


def _window(
    svc: ServiceDep, feature: str, pipeline_id: str, since: int, until: int, distinct: bool
) -> FeatureWindow:
    bucket_ms = max(1, (until - since) // BUCKETS)
    flow = {
        r["bucket"]: r
        for r in svc.queries.feature_flow(feature, pipeline_id, since, until, bucket_ms)
    }
    ents = {
        r["bucket"]: r
        for r in svc.queries.feature_entities(
            feature, pipeline_id, since, until, bucket_ms, distinct
        )
    }
    buckets = []
    for b in range(BUCKETS):
        f, e = flow.get(b, {}), ents.get(b, {})
        buckets.append(
            Bucket(
                start=since + b * bucket_ms,
                input_count=int(f.get("input_count", 0)),
                output_count=int(f.get("output_count", 0)),
                late_count=int(f.get("late_count", 0)),
                entity_values=int(e.get("values", 0)),
                entities=int(e.get("entities") or 0) if distinct else None,
            )
        )
    inputs = sum(b.input_count for b in buckets)
    outputs = sum(b.output_count for b in buckets)
    late = sum(b.late_count for b in buckets)
    late_known = any(r.get("late_reports") for r in flow.values())
    lagged = [r for r in flow.values() if r["flushes_with_watermark"]]
    flushes_lag = max_lag = None
    if lagged:
        weight = sum(r["flushes_with_watermark"] for r in lagged)
        total = sum(r["watermark_lag_ms"] * r["flushes_with_watermark"] for r in lagged)
        flushes_lag = total / weight / 1000
        max_lag = max(r["max_watermark_lag_ms"] for r in lagged) / 1000
    null_rate = mean = None
    values_from: Literal["ENTITY", "AGGREGATE", "NONE"] = "NONE"
    values = sum(int(e["values"]) for e in ents.values())
    if values:
        values_from = "ENTITY"
        null_rate = sum(int(e["nulls"]) for e in ents.values()) / values
        numeric = sum(int(e["numeric"]) for e in ents.values())
        total = sum(e["numeric_sum"] or 0.0 for e in ents.values())
        mean = total / numeric if numeric else None
    else:
        agg = svc.queries.aggregate_summary(feature, pipeline_id, since, until)
        if agg["count"]:
            values_from = "AGGREGATE"
            null_rate = agg["nulls"] / agg["count"]
            present = agg["count"] - agg["nulls"]
            mean = agg["sum"] / present if present and agg["sum"] is not None else None
    return FeatureWindow(
        since=since, until=until, buckets=buckets, input_count=inputs, output_count=outputs,
        filter_ratio=outputs / inputs if inputs else None,
        late_rate=late / inputs if inputs and late_known else None,
        watermark_lag_seconds=flushes_lag, max_watermark_lag_seconds=max_lag,
        null_rate=null_rate, mean=mean, values_from=values_from,
    )  # fmt: skip
