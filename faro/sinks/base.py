"""What faro's own sinks share: picklable factories and failure accounting."""

from __future__ import annotations

import functools
import logging
from typing import Any

from faro.core.events import CaptureEvent
from faro.core.failures import FailureLog
from faro.core.sink import SinkFactory

log = logging.getLogger("faro.sinks")


class BaseSink:
    """Base of faro's sinks.

    Subclasses implement ``emit_batch`` (and ``flush``/``close`` when they
    buffer or hold connections) and report failures to :attr:`failures`
    instead of raising. ``emitted`` counts events handed to the destination,
    ``dropped`` events given up on (destination down or buffer full).
    """

    def __init__(self) -> None:
        self.failures = FailureLog(type(self).__name__, log)
        self.emitted = 0
        self.dropped = 0

    @classmethod
    def factory(cls, *args: Any, **kwargs: Any) -> SinkFactory:
        """A picklable callable building this sink with these arguments in the worker.

        Ship the factory, not the sink, to Flink or Spark workers: a sink owns
        connections and threads, which cannot be pickled.
        """
        return functools.partial(cls, *args, **kwargs)

    def emit(self, event: CaptureEvent) -> None:
        self.emit_batch([event])

    def emit_batch(self, events: list[CaptureEvent]) -> None:
        raise NotImplementedError

    def flush(self, timeout: float | None = None) -> bool:
        return True

    def close(self) -> None:
        self.flush()
