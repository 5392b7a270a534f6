"""/violations: what the detectors found (``faro.detect``), newest first."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from faro.api.deps import Service, ServiceDep, moment, now_ms, require_pipeline
from faro.api.models import ViolationOut, Violations
from faro.core.windows import WindowError, parse_time, window_ms
from faro.detect import Severity, ViolationType, ledger

router = APIRouter(tags=["violations"])


@router.get("/violations", response_model=Violations)
def violations(
    svc: ServiceDep,
    pipeline_id: str | None = None,
    severity_gte: Severity | None = None,
    type: ViolationType | None = None,
    since: Annotated[
        str | None,
        Query(description="a window back from now (1h, 24h, 7d) or an ISO-8601 time"),
    ] = None,
    status: Literal["open", "resolved", "all"] = "all",
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    at: Annotated[
        str | None,
        Query(description="an ISO-8601 time or epoch ms: only violations open at that moment"),
    ] = None,
) -> Violations:
    """Violations that were open at any time since ``since`` (default: all), of at
    least ``severity_gte``, most recently opened first; with ``at``, only those open
    at that moment (``status`` still says whether they are open now)."""
    if pipeline_id is not None:
        require_pipeline(svc, pipeline_id)
    cutoff = None if since is None else _since_ms(since)
    point = None if at is None else moment("at", at)
    found = [
        v for v in stored(svc, pipeline_id)
        if (severity_gte is None or Severity(v.severity).rank >= severity_gte.rank)
        and (type is None or v.type == type.value)
        and (cutoff is None or v.resolved_at is None or v.resolved_at >= cutoff)
        and (status == "all" or (status == "open") == (v.status == "OPEN"))
        and (point is None or v.open_at(point))
    ]  # fmt: skip
    found.sort(key=lambda v: (v.opened_at, v.violation_id), reverse=True)
    return Violations(count=len(found), violations=found[:limit])


def stored(
    svc: Service, pipeline_id: str | None = None, feature: str | None = None
) -> list[ViolationOut]:
    return [
        ViolationOut(status="OPEN" if v.is_open else "RESOLVED", **v.to_dict())
        for v in ledger.read(svc.queries.data_dir)
        if (pipeline_id is None or v.pipeline_id == pipeline_id)
        and (feature is None or v.feature == feature)
    ]  # fmt: skip


def _since_ms(text: str) -> int:
    try:
        return now_ms() - window_ms(text)
    except WindowError:
        pass
    try:
        return parse_time(text)
    except ValueError:
        raise WindowError(
            f"since must be a window like 1h, 24h or 7d, or an ISO-8601 time like "
            f"2026-11-23T08:00:00Z; got {text!r}"
        ) from None
