"""CaptureEvents as OTLP log records over OTLP/HTTP (JSON encoding).

Any OTLP-compatible backend (an OpenTelemetry Collector, Grafana, New Relic,
Honeycomb) accepts these. Each event becomes one log record whose attributes
are the event's fields under ``faro.``; per-feature statistics are flattened to
``faro.feature_stats.<feature>.<stat>`` so backends can chart them directly.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from faro.core.events import CaptureEvent
from faro.sinks.http import BatchingHttpSink

_SEVERITY_INFO = 9


def _any_value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}  # OTLP JSON carries int64 as a string
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, list):
        return {"arrayValue": {"values": [_any_value(v) for v in value]}}
    return {"stringValue": str(value)}


def log_record(event: CaptureEvent) -> dict[str, Any]:
    fields = event.to_dict()
    stats = fields.pop("feature_stats")
    attributes = [
        {"key": f"faro.{name}", "value": _any_value(value)}
        for name, value in fields.items()
        if value is not None and value != []
    ]
    for s in stats:
        for stat, value in s.items():
            if stat != "name" and value is not None:
                key = f"faro.feature_stats.{s['name']}.{stat}"
                attributes.append({"key": key, "value": _any_value(value)})
    time_ns = str(event.processing_time * 1_000_000)
    return {
        "timeUnixNano": time_ns,
        "observedTimeUnixNano": time_ns,
        "severityNumber": _SEVERITY_INFO,
        "severityText": "INFO",
        "body": {"stringValue": f"faro {event.event_type.value} {event.operator_id}"},
        "attributes": attributes,
    }


class OtlpCaptureEventSink(BatchingHttpSink):
    """Exports to ``{endpoint}/v1/logs``; ``endpoint`` is the collector's base URL,
    as in ``OTEL_EXPORTER_OTLP_ENDPOINT`` (``http://localhost:4318``)."""

    def __init__(
        self,
        endpoint: str = "http://localhost:4318",
        *,
        service_name: str = "faro",
        headers: Mapping[str, str] | None = None,
        batch_size: int | None = None,
        linger_s: float | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
    ):
        super().__init__(
            endpoint.rstrip("/") + "/v1/logs",
            batch_size=batch_size,
            linger_s=linger_s,
            timeout=timeout,
            max_retries=max_retries,
            headers=headers,
        )
        self._resource = {
            "attributes": [{"key": "service.name", "value": {"stringValue": service_name}}]
        }

    def _encode(self, events: list[CaptureEvent]) -> tuple[bytes, str]:
        request = {
            "resourceLogs": [
                {
                    "resource": self._resource,
                    "scopeLogs": [
                        {
                            "scope": {"name": "faro"},
                            "logRecords": [log_record(e) for e in events],
                        }
                    ],
                }
            ]
        }
        return json.dumps(request, separators=(",", ":")).encode(), "application/json"
