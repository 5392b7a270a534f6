"""Engine-agnostic capture: the event model, its codecs, configuration and the recorder."""

from faro.core.config import FaroConfig, FaroFeatureConfig
from faro.core.events import (
    CaptureEvent,
    DataClassification,
    EventType,
    FeatureStats,
    FeatureValueType,
    OperatorType,
)
from faro.core.recorder import OperatorRecorder
from faro.core.sink import CaptureEventSink, SinkFactory

__all__ = [
    "CaptureEvent",
    "CaptureEventSink",
    "DataClassification",
    "EventType",
    "FaroConfig",
    "FaroFeatureConfig",
    "FeatureStats",
    "FeatureValueType",
    "OperatorRecorder",
    "OperatorType",
    "SinkFactory",
]
