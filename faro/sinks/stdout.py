"""JSON lines on standard output: local development and tests."""

from __future__ import annotations

import sys
from typing import TextIO

from faro.core.events import CaptureEvent
from faro.core.json_codec import to_json
from faro.sinks.base import BaseSink


class StdoutCaptureEventSink(BaseSink):
    """Writes one JSON object per line to ``stream`` (standard output by default)."""

    def __init__(self, stream: TextIO | None = None):
        super().__init__()
        self._stream = stream

    def emit_batch(self, events: list[CaptureEvent]) -> None:
        try:
            stream = self._stream or sys.stdout
            stream.write("".join(to_json(e) + "\n" for e in events))
            self.emitted += len(events)
        except Exception as exc:
            self.dropped += len(events)
            self.failures.record("writing to the stream failed", exc, len(events))

    def flush(self, timeout: float | None = None) -> bool:
        try:
            (self._stream or sys.stdout).flush()
        except Exception as exc:
            self.failures.record("flushing the stream failed", exc)
            return False
        return True
