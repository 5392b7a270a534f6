"""The API's Prometheus metrics, every name defined here once (as in Feast's metrics module)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

if TYPE_CHECKING:
    from faro.api.deps import Service


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
            "last flush time minus the watermark it reported",
            ["pipeline_id", "operator_id"], registry=self.registry,
        )  # fmt: skip


def refresh_pipeline_gauges(svc: Service) -> None:
    """Computed at scrape time from the store, so gauges are never older than the scrape."""
    import time

    now = int(time.time() * 1000)
    m = svc.metrics
    m.flush_age.clear()
    m.watermark_lag.clear()
    for pipeline_id in svc.queries.pipelines():
        for row in svc.queries.operators(pipeline_id, since=now):
            labels = (pipeline_id, row["operator_id"])
            m.flush_age.labels(*labels).set((now - row["last_flush"]) / 1000)
            if row["watermark"] is not None:
                m.watermark_lag.labels(*labels).set((row["last_flush"] - row["watermark"]) / 1000)
