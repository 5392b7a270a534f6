"""Violation detection over the store, and alerts (``faro detect``, the API's loop)."""

from faro.detect import ledger
from faro.detect.config import DetectConfig, Thresholds, load
from faro.detect.detectors import Finding, Severity, ViolationType
from faro.detect.ledger import Transition, Violation
from faro.detect.runner import DetectionLoop, Detector, RunReport

__all__ = [
    "DetectConfig",
    "DetectionLoop",
    "Detector",
    "Finding",
    "RunReport",
    "Severity",
    "Thresholds",
    "Transition",
    "Violation",
    "ViolationType",
    "ledger",
    "load",
]
