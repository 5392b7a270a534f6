"""/features: what values a feature had, per entity and in summary."""

from __future__ import annotations

import math
from typing import Any

from fastapi import APIRouter

from faro.api.deps import ServiceDep, now_ms, require_pipeline
from faro.api.models import FeatureValue, FeatureValues, ValueSummary
from faro.api.windows import window_ms

router = APIRouter(prefix="/features", tags=["features"])


@router.get("/{feature}/values", response_model=FeatureValues)
def feature_values(
    svc: ServiceDep, feature: str, pipeline_id: str, entity_id: str, window: str = "1h"
) -> FeatureValues:
    """The entity's sampled values within ``window``, oldest first."""
    since = now_ms() - window_ms(window)
    require_pipeline(svc, pipeline_id)
    rows = svc.queries.entity_values(feature, pipeline_id, entity_id, since)
    return FeatureValues(
        feature=feature,
        pipeline_id=pipeline_id,
        entity_id=entity_id,
        window=window,
        values=[
            FeatureValue(
                operator_id=r["operator_id"],
                event_time=r["event_time"],
                processing_time=r["processing_time"],
                value_type=r["value_type"],
                value=_exact(r),
                trace_id=r["trace_id"],
            )
            for r in rows
        ],
    )


def _exact(row: dict[str, Any]) -> bool | int | float | str | list[float] | None:
    for typed in ("feature_value_bool", "feature_value_long", "feature_value_string",
                  "feature_value_vector"):  # fmt: skip
        if row[typed] is not None:
            value: bool | int | str | list[float] = row[typed]
            return value
    number: float | None = row["feature_value"]
    return number


@router.get("/{feature}/values/summary", response_model=ValueSummary)
def value_summary(
    svc: ServiceDep, feature: str, pipeline_id: str, window: str = "1h"
) -> ValueSummary:
    """From ENTITY values when there are any; otherwise from the AGGREGATE
    per-flush statistics (PERSONAL/SENSITIVE features), without percentiles."""
    since = now_ms() - window_ms(window)
    require_pipeline(svc, pipeline_id)
    base = {"feature": feature, "pipeline_id": pipeline_id, "window": window}
    entity = svc.queries.entity_summary(feature, pipeline_id, since)
    if entity["count"]:
        p50, p95, p99 = entity["quantiles"] or (None, None, None)
        return ValueSummary(
            **base, source="ENTITY", count=entity["count"], nulls=entity["nulls"],
            min=entity["min"], max=entity["max"], mean=entity["mean"],
            stddev=entity["stddev"], p50=p50, p95=p95, p99=p99,
        )  # fmt: skip
    agg = svc.queries.aggregate_summary(feature, pipeline_id, since)
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
