"""Imports a Delta table of CaptureEvents into the store, commit by commit, exactly once.

The table is the one :class:`~faro.sinks.DeltaCaptureEventSink` writes (for
example from Spark, without Kafka). Its log says which files each commit
added; those with ``dataChange`` set hold new events, the others (compaction,
``OPTIMIZE``) hold rows already seen. Each batch of commits is written with
:class:`~faro.store.writer.EventWriter` in one journaled change together with
the last version it covers, stored under ``delta:<table>#<table id>`` in the store's
offsets, so a crash at any point neither loses nor repeats a commit's events.
Rows the store cannot hold go to ``dead_letters/`` with the reason.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

import pyarrow as pa

from faro.store import layout
from faro.store.columns import SCHEMA, invalid_rows
from faro.store.journal import hold_lock
from faro.store.writer import DEAD_LETTER_SCHEMA, EventWriter

if TYPE_CHECKING:
    from deltalake import DeltaTable

log = logging.getLogger("faro.store.delta")

_LOG_DIR = "_delta_log"


@dataclass
class ImportSummary:
    """What one :meth:`DeltaImport.run_once` stored."""

    versions: int = 0
    files: int = 0
    events: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    version: int = -1  # the last version the store now holds, -1 for none


class DeltaImport:
    """Imports the commits of ``table_uri`` made since the last import into ``data_dir``.

    ``batch_events`` bounds the events held in memory per write: commits are
    gathered until they reach it (a single larger commit is written whole).
    ``storage_options`` are ``deltalake``'s, for tables on object stores.
    Not thread-safe; one importer per table and store at a time.
    """

    def __init__(
        self,
        table_uri: str,
        data_dir: Path | str,
        *,
        storage_options: Mapping[str, str] | None = None,
        batch_events: int = 100_000,
    ) -> None:
        import pyarrow.fs as pafs

        try:
            from deltalake.fs import DeltaStorageHandler
        except ImportError as exc:
            raise ImportError(
                "importing a Delta table needs the deltalake package: pip install 'faro[delta]'"
            ) from exc

        if "://" not in table_uri:  # one table, one key, however its path is spelled
            table_uri = str(Path(table_uri).resolve())
            if not Path(table_uri).is_dir():
                raise RuntimeError(
                    f"no table at {table_uri}: no such directory; give the path "
                    "DeltaCaptureEventSink writes to"
                )
        self.table_uri = table_uri
        self.batch_events = batch_events
        self._options = dict(storage_options or {}) or None
        self._data_dir = Path(data_dir)
        self._writer = EventWriter(self._data_dir, "delta")
        try:
            handler = DeltaStorageHandler(table_uri, self._options)
        except Exception as exc:
            raise RuntimeError(
                f"cannot open {table_uri}: {exc}; give the table's directory or URI "
                "(and --storage-option KEY=VALUE for an object store)"
            ) from exc
        self._fs = pafs.PyFileSystem(handler)

    @property
    def imported_version(self) -> int:
        """The last version the store holds, -1 when nothing was imported yet."""
        return self._stored(self._key(self._table()))

    def _key(self, table: DeltaTable) -> str:
        """Where the store keeps this table's progress: its location and its id, so
        a table re-created at the same path is a new table, imported from version 0."""
        return f"delta:{self.table_uri}#{table.metadata().id}"

    def _stored(self, key: str) -> int:
        return self._writer.journal.offsets().get(key, {}).get("version", -1)

    def _table(self) -> DeltaTable:
        from deltalake import DeltaTable
        from deltalake.exceptions import TableNotFoundError

        try:
            return DeltaTable(self.table_uri, storage_options=self._options)
        except TableNotFoundError as exc:
            raise RuntimeError(
                f"{self.table_uri} is not a Delta table (yet): it has no {_LOG_DIR}/; "
                "point at the path given to DeltaCaptureEventSink"
            ) from exc

    def run_once(self) -> ImportSummary:
        """Imports every commit from the one after :attr:`imported_version` up to
        the table's latest version as of now. Refused while another import
        writes to the same store (their journals would finish each other's
        changes)."""
        with self._exclusive():
            self._writer.recover()
            return self._import()

    def _exclusive(self) -> IO[str]:
        return hold_lock(
            self._data_dir / layout.STATE / "delta-import.lock",
            f"another faro import-delta is writing to {self._data_dir}; let it "
            "finish, or follow every table from one process at a time",
        )

    def _import(self) -> ImportSummary:
        table = self._table()
        key = self._key(table)
        summary = ImportSummary(version=self._stored(key))
        latest = table.version()
        pending: list[pa.Table] = []
        rows = 0
        for version in range(summary.version + 1, latest + 1):
            try:
                tables = [self._read(version, path) for path in self._added_files(version)]
            except RuntimeError:  # the versions before it are fine: store them first
                if version - 1 > summary.version:
                    self._store(key, pending, version - 1, summary)
                raise
            pending += tables
            rows += sum(t.num_rows for t in tables)
            summary.files += len(tables)
            summary.versions += 1
            if rows >= self.batch_events or version == latest:
                self._store(key, pending, version, summary)
                pending, rows = [], 0
        return summary

    def follow(self, interval_s: float, stop: threading.Event) -> None:
        """Imports new commits every ``interval_s`` seconds until ``stop`` is set.

        A failed import is logged and tried again at the next interval (storage
        that is briefly unreachable recovers; a lost version is named each time).
        """
        while not stop.is_set():
            started = time.monotonic()
            try:
                summary = self.run_once()
            except (RuntimeError, OSError) as exc:
                log.error("importing %s failed: %s", self.table_uri, exc)
            else:
                if summary.versions:
                    log.info(describe(self.table_uri, summary))
            stop.wait(max(0.0, interval_s - (time.monotonic() - started)))

    def _added_files(self, version: int) -> list[str]:
        """The files a commit added with new data, as paths in the table."""
        name = f"{_LOG_DIR}/{version:020d}.json"
        try:
            with self._fs.open_input_stream(name) as stream:
                lines = stream.read().decode().splitlines()
        except FileNotFoundError as exc:
            raise RuntimeError(
                f"the log of {self.table_uri} no longer holds version {version} (its log "
                f"retention removed it), so its events cannot be imported; the store holds "
                f"versions up to {version - 1}. Import more often than the table's "
                "delta.logRetentionDuration, or import into a new store"
            ) from exc
        files = []
        for line in lines:
            if not line.strip():
                continue
            add = json.loads(line).get("add")
            if add is not None and add.get("dataChange", True):
                files.append(urllib.parse.unquote(add["path"]))
        return files

    def _read(self, version: int, path: str) -> pa.Table:
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path, filesystem=self._fs)
        except Exception as exc:
            raise RuntimeError(
                f"version {version} of {self.table_uri} adds {path}, which cannot be read: "
                f"{exc}; the store holds versions up to {version - 1}. Restore "
                "the file, then run again"
            ) from exc
        missing = [name for name in SCHEMA.names if name not in table.column_names]
        if missing:
            raise RuntimeError(
                f"{self.table_uri} is not a table of CaptureEvents: {path} (version {version}) "
                f"has no column {missing[0]!r}; import only what DeltaCaptureEventSink wrote"
            )
        return table.select(SCHEMA.names).cast(SCHEMA)

    def _store(
        self, key: str, tables: list[pa.Table], version: int, summary: ImportSummary
    ) -> None:
        table = pa.concat_tables(tables) if tables else SCHEMA.empty_table()
        problems = invalid_rows(table)
        dead = None
        if problems:
            keep = [i for i in range(table.num_rows) if i not in problems]
            dead = _dead_letters(key, version, table, problems)
            table = table.take(keep)
        stored = self._writer.write(table, dead_letters=dead,
                                    progress={key: {"version": version}})  # fmt: skip
        summary.events += stored.rows
        summary.duplicates += stored.duplicates
        summary.dead_letters += stored.dead_letters
        summary.version = version


def _dead_letters(key: str, version: int, table: pa.Table, problems: dict[int, str]) -> pa.Table:
    now = int(time.time() * 1000)
    rows = table.take(sorted(problems)).to_pylist()
    return pa.Table.from_pylist(
        [
            {
                "topic": key,
                "partition": 0,
                "offset": version,
                "key": None,
                "value": json.dumps(row, default=str).encode(),
                "reason": problems[i],
                "received_at": now,
            }
            for i, row in zip(sorted(problems), rows, strict=True)
        ],
        schema=DEAD_LETTER_SCHEMA,
    )


def describe(table_uri: str, summary: ImportSummary) -> str:
    """One line saying what :meth:`DeltaImport.run_once` did, for logs and the CLI."""
    if not summary.versions:
        return f"{table_uri}: nothing new after version {summary.version}"
    text = (
        f"imported {summary.versions:,} Delta versions of {table_uri} (up to version "
        f"{summary.version}): {summary.files:,} files, {summary.events:,} events"
    )
    if summary.duplicates:
        text += f", {summary.duplicates:,} repeated event ids dropped"
    if summary.dead_letters:
        text += f", {summary.dead_letters:,} rows to dead_letters/"
    return text
