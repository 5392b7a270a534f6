"""The FastAPI application: routers per resource over one query layer."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from faro import __version__
from faro.api.deps import Service
from faro.api.metrics import ApiMetrics, CountRequests
from faro.api.routers import features, ingest, pipelines, service, traces, ui, violations
from faro.core.settings import FaroSettings, settings
from faro.core.windows import WindowError
from faro.detect import DetectionLoop, Detector, load
from faro.detect.alerts import WebhookNotifier
from faro.store import layout
from faro.store.avro_batch import AvroBatchDecoder
from faro.store.queries import StoreQueries
from faro.store.writer import EventWriter


def create_app(data_dir: Path | str | None = None, config: FaroSettings | None = None) -> FastAPI:
    """The API over the store in ``data_dir`` (default ``FARO_LOCAL_PATH``)."""
    config = config or settings()
    root = Path(data_dir or config.local_path)
    root.mkdir(parents=True, exist_ok=True)
    writer = EventWriter(root, "ingest")
    writer.recover()
    queries = StoreQueries(root)
    # A bad threshold file fails here, at start-up, rather than in every detection run.
    thresholds = load(config.detect_config) if config.detect_interval else None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loop = None
        if thresholds is not None:
            hook = config.alert_webhook
            notifier = WebhookNotifier(hook) if hook else None
            loop = DetectionLoop(
                Detector(root, thresholds, notifier, queries), config.detect_interval
            )
            loop.start()
        yield
        if loop is not None:
            loop.stop()

    app = FastAPI(
        title="faro-api",
        version=__version__,
        description="What your streaming feature pipelines did: per operator, per entity.",
        lifespan=lifespan,
    )
    metrics = ApiMetrics()
    app.state.service = Service(
        queries=queries,
        writer=writer,
        write_lock=threading.Lock(),
        decode_lock=threading.Lock(),
        decoder=AvroBatchDecoder(root / layout.STAGING / "ingest-decode"),
        settings=config,
        metrics=metrics,
    )
    for module in (pipelines, features, violations, traces, ingest, service, ui):
        app.include_router(module.router)

    @app.exception_handler(WindowError)
    async def bad_window(request: Request, exc: WindowError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        return JSONResponse({"detail": problems}, status_code=422)

    app.add_middleware(CountRequests, metrics=metrics)

    return app
