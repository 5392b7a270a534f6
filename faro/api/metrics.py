"""The API's Prometheus metrics, every name defined here once (as in Feast's metrics module)."""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from faro.api.fires import window_operators
from faro.api.subtasks import operator_subtasks
from faro.store.status import StoreStatus, store_status

if TYPE_CHECKING:
    from faro.api.deps import Service


_HOUR_MS = 3_600_000


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "faro_api_requests", "HTTP requests served", ["route", "status"],
            registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            "faro_api_request_seconds", "request latency", ["route"], registry=self.registry
        )
        self.flush_age = Gauge(
            "faro_operator_seconds_since_flush",
            "seconds since the operator's last AGGREGATE event",
            ["pipeline_id", "operator_id"], registry=self.registry,
        )  # fmt: skip
        self.watermark_lag = Gauge(
            "faro_operator_watermark_lag_seconds",
            "the latest watermark's lag behind the flush that reported it",
            ["pipeline_id", "operator_id"], registry=self.registry,
        )  # fmt: skip
        self.records = Gauge(
            "faro_operator_records_last_hour",
            "records into (direction=in) and out of (direction=out) the operator over the "
            "last hour, summed over subtasks: ratios give filter ratios and hand-offs",
            ["pipeline_id", "operator_id", "direction"], registry=self.registry,
        )  # fmt: skip
        self.subtasks = Gauge(
            "faro_operator_subtasks",
            "subtasks of the operator that flushed in the last hour",
            ["pipeline_id", "operator_id"], registry=self.registry,
        )  # fmt: skip
        self.subtasks_behind = Gauge(
            "faro_operator_subtasks_behind",
            "of those, how many last flushed FARO_STALE_AFTER_S or more before the newest",
            ["pipeline_id", "operator_id"], registry=self.registry,
        )  # fmt: skip
        self.input_skew = Gauge(
            "faro_operator_input_skew",
            "last hour: the busiest subtask's input over the mean of its subtasks' (1: even)",
            ["pipeline_id", "operator_id"], registry=self.registry,
        )  # fmt: skip
        self.watermark_spread = Gauge(
            "faro_operator_watermark_spread_seconds",
            "last hour: the newest minus the oldest of its subtasks' latest watermarks",
            ["pipeline_id", "operator_id"], registry=self.registry,
        )  # fmt: skip
        self.fire_delay = Gauge(
            "faro_window_fire_delay_seconds",
            "window operators, last hour: fire time minus window end, by quantile",
            ["pipeline_id", "operator_id", "quantile"], registry=self.registry,
        )  # fmt: skip
        self.missing_windows = Gauge(
            "faro_window_missing",
            "window operators, last hour: windows on the grid that never fired",
            ["pipeline_id", "operator_id"], registry=self.registry,
        )  # fmt: skip
        self.store_events = Gauge(
            "faro_store_events", "events stored, per event type and pipeline (as /store)",
            ["event_type", "pipeline_id"], registry=self.registry,
        )  # fmt: skip
        self.store_newest_age = Gauge(
            "faro_store_seconds_since_newest_event",
            "seconds since the processing time of the newest event stored: a value that "
            "keeps growing while pipelines run means nothing reaches the store (NaN: empty)",
            registry=self.registry,
        )
        self.store_dead_letters = Gauge(
            "faro_store_dead_letters", "messages the store could not hold", registry=self.registry
        )
        self.store_to_compact = Gauge(
            "faro_store_partitions_to_compact",
            "date partitions of two files or more: what `faro compact` merges",
            registry=self.registry,
        )


class CountRequests:
    """ASGI middleware: each request counted by route and status, and timed.

    Plain ASGI rather than ``@app.middleware("http")``: Starlette's
    ``BaseHTTPMiddleware`` moves every response through a task and memory
    streams, about 0.8 ms a request here, paid on every read.
    """

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # what the server answers when the app fails before responding

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            route: Any = scope.get("route")  # set by the router on the shared scope
            name = getattr(route, "path", "unmatched")
            self.metrics.requests.labels(name, str(status)).inc()
            self.metrics.latency.labels(name).observe(time.perf_counter() - start)


def refresh_pipeline_gauges(svc: Service) -> None:
    """Computed at scrape time from the store, so gauges are never older than the scrape."""
    now = int(time.time() * 1000)
    m = svc.metrics
    _refresh_store_gauges(m, store_status(svc.queries.data_dir), now)
    gauges = (
        m.flush_age, m.watermark_lag, m.records, m.subtasks, m.subtasks_behind, m.input_skew,
        m.watermark_spread, m.fire_delay, m.missing_windows,
    )  # fmt: skip
    for gauge in gauges:
        gauge.clear()
    for pipeline_id in svc.queries.pipelines():
        for row in svc.queries.operators(pipeline_id, since=now - _HOUR_MS):
            labels = (pipeline_id, row["operator_id"])
            m.flush_age.labels(*labels).set((now - row["last_flush"]) / 1000)
            m.records.labels(*labels, "in").set(row["input_count"] or 0)
            m.records.labels(*labels, "out").set(row["output_count"] or 0)
            if row["watermark"] is not None:
                lag = (row["watermark_flush"] - row["watermark"]) / 1000
                m.watermark_lag.labels(*labels).set(lag)
        # what /pipelines/{id}/subtasks answers for the last hour
        rows = svc.queries.subtasks(pipeline_id, now - _HOUR_MS)
        for parallel in operator_subtasks(rows, now, svc.settings.stale_after_s):
            labels = (pipeline_id, parallel.operator_id)
            m.subtasks.labels(*labels).set(parallel.subtasks)
            m.subtasks_behind.labels(*labels).set(len(parallel.stalled))
            if parallel.input_skew is not None:
                m.input_skew.labels(*labels).set(parallel.input_skew)
            if parallel.watermark_spread_seconds is not None:
                m.watermark_spread.labels(*labels).set(parallel.watermark_spread_seconds)
        # what /pipelines/{id}/windows answers for the last hour
        for op in window_operators(svc.queries, pipeline_id, now - _HOUR_MS, limit=1):
            labels = (pipeline_id, op.operator_id)
            delay = op.fire_delay
            for q, seconds in (("0.5", delay.p50_seconds), ("0.95", delay.p95_seconds)):
                m.fire_delay.labels(*labels, q).set(seconds)
            if op.missing_count is not None:
                m.missing_windows.labels(*labels).set(op.missing_count)


def _refresh_store_gauges(m: ApiMetrics, status: StoreStatus, now: int) -> None:
    """What /store answers, for alerts on the store itself."""
    m.store_events.clear()
    for h in status.holdings:
        m.store_events.labels(h.event_type, h.pipeline_id).set(h.events)
    # NaN while the store is empty: 0 would read as fresh
    m.store_newest_age.set(math.nan if status.newest is None else (now - status.newest) / 1000)
    m.store_dead_letters.set(status.dead_letters.count)
    m.store_to_compact.set(status.partitions_to_compact)
