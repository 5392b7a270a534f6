"""CaptureEvents appended to a Delta table, with the ``deltalake`` package (no JVM).

The table has the store's columns (``faro.store.columns.SCHEMA``: the same
layout the materializer writes to Parquet) plus ``date``, the UTC date of the
processing time, which partitions it. Spark, Databricks, ``deltalake`` and
DuckDB's ``delta_scan`` read it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from faro.core.events import CaptureEvent
from faro.sinks.base import BaseSink

if TYPE_CHECKING:
    import pyarrow as pa


class DeltaCaptureEventSink(BaseSink):
    """Buffers ``batch_size`` events, then appends them as one Delta commit;
    a partial batch is appended once its oldest event has waited ``linger_s``.

    Every append is one transaction: a reader sees a batch whole or not at
    all. Several writers (Spark executors, one sink each) may append to the
    same table; ``deltalake`` resolves concurrent appends. Not thread-safe.
    """

    def __init__(
        self,
        path: str,
        *,
        batch_size: int = 10_000,
        linger_s: float = 60.0,
        storage_options: Mapping[str, str] | None = None,
    ):
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.path = path
        self.batch_size = batch_size
        self.linger_s = linger_s
        self._oldest = 0.0
        self._options = dict(storage_options or {})
        self._buffer: list[CaptureEvent] = []

    def emit_batch(self, events: list[CaptureEvent]) -> None:
        now = time.monotonic()
        if not self._buffer:
            self._oldest = now
        self._buffer.extend(events)
        if len(self._buffer) >= self.batch_size or now - self._oldest >= self.linger_s:
            self.flush()

    def flush(self, timeout: float | None = None) -> bool:
        if not self._buffer:
            return True
        events, self._buffer = self._buffer, []
        try:
            from deltalake import write_deltalake

            write_deltalake(
                self.path,
                to_table(events),
                mode="append",
                partition_by=["date"],
                storage_options=self._options or None,
            )
            self.emitted += len(events)
            return True
        except Exception as exc:
            self.dropped += len(events)
            self.failures.record(
                f"appending to the Delta table {self.path} failed", exc, len(events)
            )
            return False


def to_table(events: list[CaptureEvent]) -> pa.Table:
    """The events as store columns plus the ``date`` partition column."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from faro.store.columns import events_to_table

    table = events_to_table(events)
    days = pc.cast(pc.divide(table["processing_time"], 86_400_000), pa.int32())
    dates = pc.cast(pc.cast(days, pa.date32()), pa.string())
    return table.append_column("date", dates)
