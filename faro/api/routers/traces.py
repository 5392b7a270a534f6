"""/traces and /entities: following one record or one entity across operators and pipelines."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from faro.api.deps import ServiceDep
from faro.api.models import Lineage, LineageStep, Trace, TraceEvent

router = APIRouter(tags=["traces"])


@router.get("/traces/{trace_id}", response_model=Trace)
def trace(svc: ServiceDep, trace_id: str) -> Trace:
    """Every ENTITY event of the trace, in processing order."""
    rows = svc.queries.trace(trace_id)
    if not rows:
        raise HTTPException(
            404, f"no events with trace_id {trace_id!r}; trace ids come from ENTITY events"
        )
    return Trace(trace_id=trace_id, events=[TraceEvent(**r) for r in rows])


@router.get("/entities/{entity_id}/lineage", response_model=Lineage)
def lineage(svc: ServiceDep, entity_id: str) -> Lineage:
    """Every pipeline, operator and feature that saw the entity, oldest first."""
    rows = svc.queries.lineage(entity_id)
    if not rows:
        raise HTTPException(
            404,
            f"no ENTITY events for entity {entity_id!r}: it was not sampled, its features are "
            "PERSONAL/SENSITIVE (aggregate only), or it never passed an instrumented operator",
        )
    return Lineage(entity_id=entity_id, steps=[LineageStep(**r) for r in rows])
