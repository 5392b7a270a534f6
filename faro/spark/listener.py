"""FaroStreamingListener: the latest progress of every streaming query, on the driver."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql.streaming import StreamingQueryListener

from faro.core.windows import parse_time


@dataclass(frozen=True)
class QueryProgress:
    """What Spark reported at the end of one micro-batch. Times are epoch ms, UTC;
    ``watermark`` is None until the query has one (Spark reports the epoch).
    ``late_rows``: rows the query's stateful operators dropped for arriving behind
    the watermark (None in a query without one); ``observed``: the batch's metrics
    of each ``DataFrame.observe`` in the query, by name."""

    query_id: str
    name: str | None
    batch_id: int
    watermark: int | None
    input_rows: int
    processed_rows_per_second: float
    event_time_min: int | None
    event_time_max: int | None
    event_time_avg: int | None
    late_rows: int | None = None
    observed: dict[str, dict[str, Any]] = field(default_factory=dict)


def _epoch_ms(text: str | None) -> int | None:
    """Spark's ``2026-11-23T12:41:59.317Z`` as epoch ms; the epoch itself means none."""
    return (parse_time(text) or None) if text else None


def _progress(p: Any) -> QueryProgress:
    times = p.eventTime or {}
    return QueryProgress(
        query_id=str(p.id),
        name=p.name,
        batch_id=p.batchId,
        watermark=_epoch_ms(times.get("watermark")),
        input_rows=p.numInputRows,
        processed_rows_per_second=p.processedRowsPerSecond,
        event_time_min=_epoch_ms(times.get("min")),
        event_time_max=_epoch_ms(times.get("max")),
        event_time_avg=_epoch_ms(times.get("avg")),
        late_rows=(
            sum(s.numRowsDroppedByWatermark for s in p.stateOperators) if p.stateOperators else None
        ),
        observed={name: row.asDict() for name, row in (p.observedMetrics or {}).items()},
    )


class FaroStreamingListener(StreamingQueryListener):
    """Register once per session (``spark.streams.addListener(listener)``) and hand
    it to ``FaroSpark.with_streaming_context``: traces then report each micro-batch
    as soon as Spark has finished it, and fall back on its watermark where the
    running batch's own is not readable (Spark Connect).

    Callbacks arrive on Spark's listener thread; reads are thread-safe.
    """

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._latest: dict[str, QueryProgress] = {}
        self._subscribers: list[Callable[[QueryProgress], None]] = []

    def latest(self, query_id: str | None = None) -> QueryProgress | None:
        """The newest progress of ``query_id`` (of any query if None)."""
        with self._lock:
            if query_id is not None:
                return self._latest.get(query_id)
            return max(self._latest.values(), key=lambda p: p.batch_id, default=None)

    def subscribe(self, callback: Callable[[QueryProgress], None]) -> None:
        with self._lock:
            self._subscribers.append(callback)

    def onQueryStarted(self, event: Any) -> None:
        pass

    def onQueryProgress(self, event: Any) -> None:
        progress = _progress(event.progress)
        with self._lock:
            self._latest[progress.query_id] = progress
            subscribers = list(self._subscribers)
        for callback in subscribers:
            callback(progress)

    def onQueryIdle(self, event: Any) -> None:
        pass

    def onQueryTerminated(self, event: Any) -> None:
        pass
