"""The contract between capture and delivery: emit, flush, close.

Any object with these three methods is a sink; faro's own sinks live in
``faro.sinks``. A sink may also offer:

* ``emit_batch(events)``, which the async wrapper prefers when present;
* ``emit_deferred(draft)``, which takes an ENTITY event still to be built
  (:mod:`faro.core.drafts`): the recorder then leaves building to the sink's
  own thread (the async wrapper does this);
* ``takes_drafts = True``, which tells the async wrapper that its
  ``emit_batch`` accepts drafts among the events, so they reach it unbuilt
  (the Kafka sink encodes them directly);
* the :class:`StagingSink` methods, which let Spark's driver commit what its
  executors wrote as one transaction per micro-batch (the Delta sink has them).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from faro.core.events import CaptureEvent
from faro.core.failures import FailureLog


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


@runtime_checkable
class StagingSink(Protocol):
    """A sink whose writes one process makes and another commits."""

    def stage(self) -> None:
        """Start a unit of work (a Spark task) written without making anything
        visible to readers; drop what an unfinished earlier unit left."""

    def staged(self) -> list[Any]:
        """Write what is buffered; return, and forget, what was written since the
        last call: picklable, for :meth:`commit` in another process."""

    def commit(self, staged: list[Any]) -> bool:
        """Make ``staged`` (from any number of sinks) visible at once. Never
        raises; returns False when it failed, which the sink counts."""


SinkFactory = Callable[[], CaptureEventSink]
"""A picklable zero-argument callable that builds a sink inside the worker process."""


class _DiscardingSink:
    """Stands in for a sink whose factory failed, so capture keeps counting."""

    def emit(self, event: CaptureEvent) -> None:
        pass

    def flush(self, timeout: float | None = None) -> bool:
        return False

    def close(self) -> None:
        pass


def build_sink(factory: SinkFactory, failures: FailureLog) -> CaptureEventSink:
    """Calls the factory in the worker; on failure, logs it and discards events."""
    try:
        return factory()
    except Exception as exc:
        failures.record(f"building the sink with {factory!r} failed; events are discarded", exc)
        return _DiscardingSink()


def check_factory(sink: Any) -> SinkFactory:
    """Rejects a built sink where a factory belongs, with the fix in the message."""
    is_built_sink = hasattr(sink, "emit") and not isinstance(sink, type)  # a class is a factory
    if is_built_sink or not callable(sink):
        raise TypeError(
            "pass a sink factory, not a sink: a sink holds connections that cannot be shipped "
            "to workers; use e.g. KafkaCaptureEventSink.factory(...) or "
            "AsyncCaptureEventSink.wrap(HttpCaptureEventSink.factory(url), 1000)"
        )
    return sink
