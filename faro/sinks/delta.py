"""CaptureEvents appended to a Delta table, with the ``deltalake`` package (no JVM).

The table has the store's columns (``faro.store.columns.SCHEMA``: the same
layout the materializer writes to Parquet) plus ``date``, the UTC date of the
processing time, which partitions it. Spark, Databricks, ``deltalake`` and
DuckDB's ``delta_scan`` read it.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from faro.core.events import CaptureEvent
from faro.sinks.base import BaseSink

if TYPE_CHECKING:
    import pyarrow as pa
    from deltalake import DeltaTable


class DeltaCaptureEventSink(BaseSink):
    """Buffers ``batch_size`` events, then appends them as one Delta commit;
    a partial batch is appended once its oldest event has waited ``linger_s``.

    Every append is one transaction: a reader sees a batch whole or not at
    all. Several writers (one sink per Flink subtask, say) may append to the
    same table; ``deltalake`` resolves concurrent appends. Not thread-safe.

    It is also a :class:`~faro.core.sink.StagingSink`. After :meth:`stage`,
    appends write their Parquet files without committing; :meth:`staged`
    hands over those files' add actions, and :meth:`commit` (on any
    instance) commits a list of them as one transaction. Spark's executors
    stage and the driver commits, so a micro-batch's ENTITY events are one
    commit whatever its task count, and a retried task's files are committed
    once: only the attempt that succeeded reaches the driver.
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
        self._staging = False
        self._staged: list[dict[str, Any]] = []
        self._created = False

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
            if self._staging:
                self._staged += self._write_files(to_table(events))
            else:
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

    def stage(self) -> None:
        """Starts a unit of work whose appends write files without committing them.

        What an earlier unit left behind without :meth:`staged` collecting it (a
        Spark task that was killed, whose retry writes the same events again) is
        forgotten, so that it is never committed alongside the next unit's work.
        """
        self._staging = True
        self._buffer, self._staged = [], []

    def staged(self) -> list[dict[str, Any]]:
        """Writes what is buffered, then returns and forgets the files staged so
        far: picklable descriptions for :meth:`commit`."""
        self.flush()
        staged, self._staged = self._staged, []
        return staged

    def commit(self, staged: list[dict[str, Any]]) -> bool:
        """Makes staged files part of the table, in one transaction.

        Creates the table first if no one has. A failed commit counts the
        files' events in :attr:`dropped`: the files stay unreferenced, which
        readers never see and ``VACUUM`` removes.
        """
        if not staged:
            return True
        try:
            from deltalake.transaction import AddAction

            table = self._table()
            table.create_write_transaction(
                [AddAction(**file["add"]) for file in staged],
                mode="append",
                schema=table.schema(),
                partition_by=["date"],
            )
            return True
        except Exception as exc:
            rows = sum(file["rows"] for file in staged)
            self.dropped += rows
            self.failures.record(
                f"committing {len(staged)} staged files to the Delta table {self.path} failed",
                exc,
                rows,
            )
            return False

    def _table(self) -> DeltaTable:
        """The table, created first if it does not exist yet."""
        from deltalake import DeltaTable
        from deltalake.exceptions import TableNotFoundError

        options = self._options or None
        try:
            return DeltaTable(self.path, storage_options=options)
        except TableNotFoundError:
            pass
        try:
            schema = to_table([]).schema
            table = DeltaTable.create(
                self.path, schema, mode="ignore", partition_by=["date"], storage_options=options
            )
        except Exception:  # another writer created it first
            table = DeltaTable(self.path, storage_options=options)
        return table

    def _write_files(self, table: pa.Table) -> list[dict[str, Any]]:
        """One Parquet file per date, through ``deltalake``'s own storage layer
        (so ``storage_options`` mean here what they mean to ``write_deltalake``)."""
        import pyarrow.compute as pc
        import pyarrow.fs as pafs
        import pyarrow.parquet as pq
        from deltalake.fs import DeltaStorageHandler

        if not self._created:  # the storage layer wants the table's directory to exist
            self._table()
            self._created = True
        fs = pafs.PyFileSystem(DeltaStorageHandler(self.path, self._options or None))
        files = []
        for date in pc.unique(table["date"]).to_pylist():
            part = table.filter(pc.equal(table["date"], date)).drop_columns(["date"])
            path = f"date={date}/part-{uuid.uuid4().hex}-c000.snappy.parquet"
            pq.write_table(part, path, filesystem=fs, compression="snappy")
            add = {
                "path": path,
                "size": fs.get_file_info(path).size,
                "partition_values": {"date": date},
                "modification_time": int(time.time() * 1000),
                "data_change": True,
                "stats": _stats(part),
            }
            files.append({"add": add, "rows": part.num_rows})
        return files


def _stats(part: pa.Table) -> str:
    """Delta file statistics for the time columns, which readers skip files by."""
    import pyarrow.compute as pc

    low, high, nulls = {}, {}, {}
    for name in ("processing_time", "event_time"):
        column = part[name]
        bounds = pc.min_max(column)
        nulls[name] = column.null_count
        if bounds["min"].is_valid:
            low[name], high[name] = bounds["min"].as_py(), bounds["max"].as_py()
    return json.dumps(
        {"numRecords": part.num_rows, "minValues": low, "maxValues": high, "nullCount": nulls}
    )


def to_table(events: list[CaptureEvent]) -> pa.Table:
    """The events as store columns plus the ``date`` partition column."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from faro.store.columns import events_to_table

    table = events_to_table(events)
    days = pc.cast(pc.divide(table["processing_time"], 86_400_000), pa.int32())
    dates = pc.cast(pc.cast(days, pa.date32()), pa.string())
    return table.append_column("date", dates)
