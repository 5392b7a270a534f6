"""Where CaptureEvents go. Every sink is fire-and-forget: failures are counted, never raised."""

from faro.sinks.async_sink import AsyncCaptureEventSink
from faro.sinks.base import BaseSink
from faro.sinks.delta import DeltaCaptureEventSink
from faro.sinks.http import HttpCaptureEventSink
from faro.sinks.kafka import KafkaCaptureEventSink
from faro.sinks.otlp import OtlpCaptureEventSink
from faro.sinks.select import SINK_KINDS, sink_factory
from faro.sinks.stdout import StdoutCaptureEventSink

__all__ = [
    "SINK_KINDS",
    "AsyncCaptureEventSink",
    "BaseSink",
    "DeltaCaptureEventSink",
    "HttpCaptureEventSink",
    "KafkaCaptureEventSink",
    "OtlpCaptureEventSink",
    "StdoutCaptureEventSink",
    "sink_factory",
]
