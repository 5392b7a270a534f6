"""The contract between capture and delivery: emit, flush, close.

Any object with these three methods is a sink; faro's own sinks live in
``faro.sinks``. A sink may also offer ``emit_batch(events)``, which the async
wrapper prefers when present.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

from faro.core.events import CaptureEvent


@runtime_checkable
class CaptureEventSink(Protocol):
    def emit(self, event: CaptureEvent) -> None:
        """Hand over one event. Must not raise and must not block for long."""

    def flush(self, timeout: float | None = None) -> bool:
        """Deliver what is buffered, waiting at most ``timeout`` seconds.

        Returns True when nothing is left undelivered.
        """

    def close(self) -> None:
        """Release connections and threads; the sink is unusable afterwards."""


SinkFactory = Callable[[], CaptureEventSink]
"""A picklable zero-argument callable that builds a sink inside the worker process."""
