"""Atomic multi-file changes to the store, and the offsets they cover.

A change (new files, deleted files, Kafka offsets now stored) is decided by
writing a journal entry; applying it renames staged files into place, deletes
replaced ones and records the offsets. The journal entry is written to a temp
file, fsynced and renamed, so it either exists whole or not at all, and
applying is idempotent: after a crash at any point, :meth:`Journal.recover`
finishes every decided change and discards staged files no entry names.
Readers therefore see each change entirely or not at all (apart from the
moment between two renames of one change), and no row is stored twice.

Each writer kind (materializer, API ingest, maintenance) has its own journal
prefix and recovers only its own entries, so a process never finishes a
change another live process is still applying.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from faro.store import layout

log = logging.getLogger("faro.store")


@dataclass
class Change:
    """Paths are relative to the data directory."""

    moves: list[tuple[str, str]] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)
    offsets: dict[str, dict[str, int]] = field(default_factory=dict)


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """``path`` holds either its old content or ``data``, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def hold_lock(path: Path, busy: str) -> IO[str]:
    """An exclusive lock on ``path``, held until the returned file is closed;
    raises ``RuntimeError(busy)`` at once if another process holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "w")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise RuntimeError(busy) from None
    return handle


class Journal:
    def __init__(self, data_dir: Path, kind: str) -> None:
        self.data_dir = data_dir
        self.kind = kind
        self._dir = data_dir / layout.JOURNAL
        self._staging = data_dir / layout.STAGING / kind
        self._offsets_path = data_dir / layout.STATE / "offsets.json"

    def staging_path(self, suffix: str = ".parquet") -> Path:
        """A fresh path for a file that a later :meth:`apply` moves into place."""
        self._staging.mkdir(parents=True, exist_ok=True)
        return self._staging / f"{uuid.uuid4().hex}{suffix}"

    def relative(self, path: Path) -> str:
        return str(path.relative_to(self.data_dir))

    def apply(self, change: Change) -> None:
        """Decides ``change`` durably, then carries it out."""
        entry = self._dir / f"{self.kind}-{uuid.uuid4().hex}.json"
        payload = {"moves": change.moves, "deletes": change.deletes, "offsets": change.offsets}
        write_atomic(entry, json.dumps(payload).encode())
        self._carry_out(entry, payload)

    def recover(self) -> int:
        """Finishes every decided change of this kind and drops orphaned staged files."""
        entries = sorted(self._dir.glob(f"{self.kind}-*.json"))
        for entry in entries:
            log.info("finishing interrupted store change %s", entry.name)
            self._carry_out(entry, json.loads(entry.read_text()))
        if self._staging.exists():
            orphans = list(self._staging.iterdir())
            if orphans:
                log.info("discarding %d staged files of an unfinished batch", len(orphans))
            shutil.rmtree(self._staging)
        return len(entries)

    def offsets(self) -> dict[str, dict[str, int]]:
        """Last stored offset per topic and partition (partition keys are strings);
        other sources keep their progress here too (``delta:<table>``: ``version``)."""
        if not self._offsets_path.exists():
            return {}
        data: dict[str, dict[str, int]] = json.loads(self._offsets_path.read_text())
        return data

    def _carry_out(self, entry: Path, payload: dict[str, Any]) -> None:
        touched: set[Path] = set()
        for staged, final in payload["moves"]:
            src, dst = self.data_dir / staged, self.data_dir / final
            if src.exists():
                dst.parent.mkdir(parents=True, exist_ok=True)
                os.replace(src, dst)
                touched.add(dst.parent)
        for rel in payload["deletes"]:
            path = self.data_dir / rel
            if path.exists():
                path.unlink()
                touched.add(path.parent)
        for directory in touched:
            fsync_dir(directory)
        if payload["offsets"]:
            # Read, merge and write under a lock: the materializer and `faro import-delta`
            # may store their progress in one store at the same time, and neither's
            # update may be lost (a lost offset would mean events stored twice).
            self._offsets_path.parent.mkdir(parents=True, exist_ok=True)
            with open(self._offsets_path.with_name("offsets.lock"), "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                stored = self.offsets()
                for topic, parts in payload["offsets"].items():
                    mine = stored.setdefault(topic, {})
                    for part, offset in parts.items():
                        mine[part] = max(offset, mine.get(part, -1))
                write_atomic(self._offsets_path, json.dumps(stored, sort_keys=True).encode())
        entry.unlink()
        fsync_dir(entry.parent)
