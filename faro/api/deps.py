"""Shared resources of the request handlers, and the errors they raise."""

from __future__ import annotations

import difflib
import threading
import time
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from faro.api.metrics import ApiMetrics
from faro.core.settings import FaroSettings
from faro.store.avro_batch import AvroBatchDecoder
from faro.store.queries import StoreQueries
from faro.store.writer import EventWriter


@dataclass
class Service:
    queries: StoreQueries
    writer: EventWriter
    write_lock: threading.Lock
    decode_lock: threading.Lock  # apart from write_lock: one request decodes while another writes
    decoder: AvroBatchDecoder
    settings: FaroSettings
    metrics: ApiMetrics


def service(request: Request) -> Service:
    svc: Service = request.app.state.service
    return svc


ServiceDep = Annotated[Service, Depends(service)]


def now_ms() -> int:
    return int(time.time() * 1000)


def unknown(what: str, name: str, known: list[str]) -> HTTPException:
    """404 naming the closest known names, so a typo is obvious."""
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    listing = ", ".join(known[:20]) or "none yet"
    return HTTPException(404, f"unknown {what} {name!r}{hint} Known: {listing}")


def require_pipeline(svc: Service, pipeline_id: str) -> None:
    known = svc.queries.pipelines()
    if pipeline_id not in known:
        raise unknown("pipeline", pipeline_id, known)
