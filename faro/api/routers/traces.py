"""/traces and /entities: following one record or one entity across operators and pipelines."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException

from faro.api.deps import AsOf, AsOfQuery, ServiceDep, require_pipeline, values_as_of_many
from faro.api.models import (
    AsOfLookups,
    EntityValue,
    EntityValuesAsOf,
    Lineage,
    LineageStep,
    ManyAsOf,
    Trace,
    TraceEvent,
)

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


@router.get("/entities/{entity_id}/as-of", response_model=EntityValuesAsOf)
def entity_as_of(svc: ServiceDep, entity_id: str, q: AsOf) -> EntityValuesAsOf:
    """Everything the store knows of the entity at one moment: per pipeline, feature
    and operator, its value then (see ``/features/{feature}/values/as-of``). What a
    model that read the entity's features at ``at`` was served, as far as sampling
    shows."""
    rows = svc.queries.entity_value_as_of(entity_id, q.at, by=q.by, known=q.known, since=q.since)
    return _answer(entity_id, q, rows)


@router.post("/entities/as-of", response_model=ManyAsOf, responses={404: {}})
def entities_as_of(svc: ServiceDep, body: AsOfLookups) -> ManyAsOf:
    """``/entities/{id}/as-of`` for many entities, each at its own moment, in one
    query: what a model that logged these predictions was served, to set against what
    it logged (training/serving skew)."""
    if body.pipeline_id is not None:
        require_pipeline(svc, body.pipeline_id)
    queries, found = values_as_of_many(
        svc, body.lookups, "lookups", by=body.by,
        known_at=None if body.known_at is None else str(body.known_at), lookback=body.lookback,
        pipeline_id=body.pipeline_id, features=body.features,
    )  # fmt: skip
    return ManyAsOf(
        by=body.by,
        lookback=body.lookback,
        answers=[
            _answer(x.entity_id, q, rows)
            for x, q, rows in zip(body.lookups, queries, found, strict=True)
        ],
    )


def _answer(entity_id: str, q: AsOfQuery, rows: list[dict[str, Any]]) -> EntityValuesAsOf:
    return EntityValuesAsOf(
        entity_id=entity_id, at=q.at, by=q.by, known_at=q.known, since=q.since,
        values=[EntityValue.from_row(r) for r in rows],
    )  # fmt: skip
