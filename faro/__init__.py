"""faro: runtime observability for streaming feature pipelines.

The public API is what this module exports; engine adapters live in
``faro.flink`` and ``faro.spark`` so importing faro never pulls in an engine.
"""

from faro.core import (
    CaptureEvent,
    CaptureEventSink,
    DataClassification,
    EventType,
    FaroConfig,
    FaroFeatureConfig,
    FeatureStats,
    FeatureValueType,
    OperatorRecorder,
    OperatorType,
    SinkFactory,
)
from faro.sinks import (
    AsyncCaptureEventSink,
    DeltaCaptureEventSink,
    HttpCaptureEventSink,
    KafkaCaptureEventSink,
    OtlpCaptureEventSink,
    StdoutCaptureEventSink,
)

__version__ = "0.1.0"

__all__ = [
    "AsyncCaptureEventSink",
    "CaptureEvent",
    "CaptureEventSink",
    "DataClassification",
    "DeltaCaptureEventSink",
    "EventType",
    "FaroConfig",
    "FaroFeatureConfig",
    "FeatureStats",
    "FeatureValueType",
    "HttpCaptureEventSink",
    "KafkaCaptureEventSink",
    "OperatorRecorder",
    "OperatorType",
    "OtlpCaptureEventSink",
    "SinkFactory",
    "StdoutCaptureEventSink",
    "__version__",
]
