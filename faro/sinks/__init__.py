"""Where CaptureEvents go. Every sink is fire-and-forget: failures are counted, never raised."""

from faro.sinks.async_sink import AsyncCaptureEventSink
from faro.sinks.base import BaseSink
from faro.sinks.http import HttpCaptureEventSink
from faro.sinks.kafka import KafkaCaptureEventSink
from faro.sinks.otlp import OtlpCaptureEventSink
from faro.sinks.stdout import StdoutCaptureEventSink

__all__ = [
    "AsyncCaptureEventSink",
    "BaseSink",
    "HttpCaptureEventSink",
    "KafkaCaptureEventSink",
    "OtlpCaptureEventSink",
    "StdoutCaptureEventSink",
]
