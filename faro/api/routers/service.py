"""/healthz and /metrics: the service's own health, for orchestrators and Prometheus."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from faro.api.deps import ServiceDep
from faro.api.metrics import refresh_pipeline_gauges

router = APIRouter(tags=["service"])


@router.get("/healthz")
def healthz(svc: ServiceDep) -> dict[str, str]:
    return {"status": "ok", "data_dir": str(svc.queries.data_dir)}


@router.get("/metrics", response_class=Response)
def metrics(svc: ServiceDep) -> Response:
    """Prometheus exposition: request counts and latencies, and per pipeline and
    operator the age of the last flush and the watermark lag."""
    refresh_pipeline_gauges(svc)
    registry = svc.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
