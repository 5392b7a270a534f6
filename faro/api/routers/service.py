"""/healthz, /metrics and /store: the service's own health, for orchestrators and
Prometheus, and what its store holds."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from faro.api.deps import ServiceDep
from faro.api.metrics import refresh_pipeline_gauges
from faro.api.models import StoreStatusOut
from faro.store.status import store_status

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


@router.get("/store", response_model=StoreStatusOut)
def store(svc: ServiceDep) -> StoreStatusOut:
    """What the store holds per event type and pipeline, its dead letters, how far it
    has got in each source, and what `faro compact` would merge; from file footers and
    state files, so it reads no event (`faro status` prints the same)."""
    return StoreStatusOut.model_validate(store_status(svc.queries.data_dir).to_dict())
