"""/pipelines: what is flowing, per operator."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from faro.api.deps import (
    ServiceDep,
    Until,
    moment,
    now_ms,
    require_operator,
    require_pipeline,
    window_bounds,
)
from faro.api.fires import window_operators
from faro.api.funnel import funnel_stages, guessed_order, requested_order
from faro.api.models import (
    FeatureInfo,
    OperatorHealth,
    OperatorThroughput,
    PipelineFeatures,
    PipelineFunnel,
    PipelineHealth,
    PipelineOperators,
    PipelineSubtasks,
    PipelineSummary,
    PipelineWindows,
    Status,
    Thresholds,
)
from faro.api.subtasks import operator_subtasks
from faro.core.windows import window_ms

router = APIRouter(prefix="/pipelines", tags=["pipelines"])


@router.get("", response_model=list[PipelineSummary])
def pipelines(svc: ServiceDep) -> list[PipelineSummary]:
    return [PipelineSummary(pipeline_id=p) for p in svc.queries.pipelines()]


@router.get("/{pipeline_id}/health", response_model=PipelineHealth)
def pipeline_health(
    svc: ServiceDep,
    pipeline_id: str,
    at: Annotated[
        str | None,
        Query(description="an ISO-8601 time or epoch ms: the health as it was then"),
    ] = None,
) -> PipelineHealth:
    """Each operator is OK, STALE (no flush for ``FARO_STALE_AFTER_S``) or SILENT
    (none for ``FARO_SILENT_AFTER_S``); watermark lag is measured from the flush
    that reported the watermark, not from a later one that had none. With
    ``at``, as it was at that moment: was the pipeline flowing when a model read it?
    Operators that first flushed after it are not listed."""
    point = now_ms() if at is None else moment("at", at)
    require_pipeline(svc, pipeline_id)
    stale, silent = svc.settings.stale_after_s, svc.settings.silent_after_s
    operators = []
    for row in svc.queries.operators(pipeline_id, point, None if at is None else point + 1):
        idle = (point - row["last_flush"]) / 1000
        status: Status = "SILENT" if idle >= silent else "STALE" if idle >= stale else "OK"
        watermark = row["watermark"]
        operators.append(
            OperatorHealth(
                operator_id=row["operator_id"],
                operator_type=row["operator_type"],
                status=status,
                last_flush=row["last_flush"],
                seconds_since_flush=idle,
                watermark=watermark,
                watermark_lag_seconds=None
                if watermark is None
                else (row["watermark_flush"] - watermark) / 1000,
            )
        )
    return PipelineHealth(
        pipeline_id=pipeline_id,
        flowing=bool(operators) and all(o.status == "OK" for o in operators),
        at=point,
        thresholds=Thresholds(stale_after_seconds=stale, silent_after_seconds=silent),
        operators=operators,
    )


@router.get("/{pipeline_id}/operators", response_model=PipelineOperators)
def pipeline_operators(
    svc: ServiceDep, pipeline_id: str, window: str = "1h", until: Until = None
) -> PipelineOperators:
    """Throughput per operator over ``window`` (ending at ``until``), summed over
    subtasks; the last flush before the window's end."""
    since, end = window_bounds(window, until)
    require_pipeline(svc, pipeline_id)
    minutes = window_ms(window) / 60_000
    out = []
    for row in svc.queries.operators(pipeline_id, since, end):
        inputs, outputs, late = (row[k] or 0 for k in ("input_count", "output_count", "late_count"))
        out.append(
            OperatorThroughput(
                operator_id=row["operator_id"],
                operator_type=row["operator_type"],
                subtasks=row["subtasks"],
                input_per_minute=inputs / minutes,
                output_per_minute=outputs / minutes,
                filter_ratio=outputs / inputs if inputs else None,
                # unknown, not 0, where the engine drops late records before the operator
                late_rate=late / inputs if inputs and row["late_count"] is not None else None,
                last_flush=row["last_flush"],
            )
        )
    return PipelineOperators(pipeline_id=pipeline_id, window=window, operators=out)


@router.get("/{pipeline_id}/subtasks", response_model=PipelineSubtasks)
def pipeline_subtasks(
    svc: ServiceDep,
    pipeline_id: str,
    window: str = "1h",
    operator_id: Annotated[str | None, Query(description="one operator; default: all")] = None,
    until: Until = None,
) -> PipelineSubtasks:
    """Each operator's subtasks that flushed in ``window`` (ending at ``until``), side
    by side: which fell behind the others, how unevenly the input spreads over them,
    and whose watermark holds event time back."""
    since, end = window_bounds(window, until)
    require_pipeline(svc, pipeline_id)
    if operator_id is not None:
        require_operator(svc, pipeline_id, operator_id)
    rows = svc.queries.subtasks(pipeline_id, since, end)
    if operator_id is not None:
        rows = [r for r in rows if r["operator_id"] == operator_id]
    at = now_ms() if end is None else end
    stale = svc.settings.stale_after_s
    return PipelineSubtasks(
        pipeline_id=pipeline_id,
        window=window,
        at=at,
        stale_after_seconds=stale,
        operators=operator_subtasks(rows, at, stale),
    )


@router.get("/{pipeline_id}/features", response_model=PipelineFeatures)
def pipeline_features(svc: ServiceDep, pipeline_id: str) -> PipelineFeatures:
    """The features the pipeline's operators compute, by name: what the feature
    endpoints take, and which of them have per-entity values."""
    require_pipeline(svc, pipeline_id)
    return PipelineFeatures(
        pipeline_id=pipeline_id,
        features=[FeatureInfo(**f) for f in svc.queries.feature_catalog(pipeline_id)],
    )


@router.get("/{pipeline_id}/windows", response_model=PipelineWindows)
def pipeline_windows(
    svc: ServiceDep,
    pipeline_id: str,
    window: str = "1h",
    limit: Annotated[int, Query(ge=1, le=1000, description="recent windows per operator")] = 20,
    until: Until = None,
) -> PipelineWindows:
    """Per window operator, over ``window`` of processing time: how long after each
    window's end its results were captured (fire delay), late rate per window, and the
    windows that never fired between the first and the last that did."""
    since, end = window_bounds(window, until)
    require_pipeline(svc, pipeline_id)
    operators = window_operators(svc.queries, pipeline_id, since, limit, end)
    return PipelineWindows(pipeline_id=pipeline_id, window=window, operators=operators)


@router.get("/{pipeline_id}/funnel", response_model=PipelineFunnel)
def pipeline_funnel(
    svc: ServiceDep,
    pipeline_id: str,
    window: str = "1h",
    order: Annotated[
        str | None,
        Query(
            description="operator ids, comma-separated, upstream first: the stages to show, "
            "in flow order (one path of a branching pipeline). Default: every operator, "
            "ordered by kind and volume"
        ),
    ] = None,
    until: Until = None,
) -> PipelineFunnel:
    """Records in and out of each stage over ``window``, summed over subtasks, with
    what each stage passed on, what reached it from the stage before, and what is left
    of the first stage's input: where a pipeline loses records."""
    since, end = window_bounds(window, until)
    require_pipeline(svc, pipeline_id)
    rows = svc.queries.operators(pipeline_id, since, end)
    if order is None:
        stages = guessed_order(rows)
    else:
        stages = requested_order(order, [r["operator_id"] for r in rows])
    return PipelineFunnel(
        pipeline_id=pipeline_id,
        window=window,
        order_from="operator_kind" if order is None else "request",
        stages=funnel_stages(rows, stages),
    )
