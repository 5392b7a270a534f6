"""Where things live under a data directory (``FARO_LOCAL_PATH``).

::

    events/event_type=ENTITY/pipeline_id=user-features/date=2026-11-23/*.parquet
    dead_letters/date=2026-11-23/*.parquet   raw bytes + reason + offset
    violations/violations.parquet            detection's ledger (faro.detect.ledger)
    _journal/*.json                          file operations decided but maybe not applied
    _staging/                                files written but not yet in place
    _state/offsets.json                      last offset stored per topic partition

Partition values are percent-encoded (as Hive does), so any pipeline id is a
valid directory name. Readers glob ``events/**/*.parquet``; a file appears
there only complete (it is renamed into place).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from urllib.parse import quote, unquote

EVENTS = "events"
DEAD_LETTERS = "dead_letters"
JOURNAL = "_journal"
STAGING = "_staging"
STATE = "_state"


def encode_value(value: str) -> str:
    return quote(value, safe="")


def decode_value(value: str) -> str:
    return unquote(value)


def utc_date(epoch_ms: int) -> str:
    return dt.datetime.fromtimestamp(epoch_ms / 1000, tz=dt.timezone.utc).date().isoformat()


def partition_dir(data_dir: Path, event_type: str, pipeline_id: str, date: str) -> Path:
    return (
        data_dir
        / EVENTS
        / f"event_type={encode_value(event_type)}"
        / f"pipeline_id={encode_value(pipeline_id)}"
        / f"date={date}"
    )


def partition_values(directory: Path) -> dict[str, str]:
    """``{"event_type": ..., "pipeline_id": ..., "date": ...}`` from a partition path."""
    values = {}
    for part in directory.parts:
        key, sep, value = part.partition("=")
        if sep:
            values[key] = decode_value(value)
    return values


def event_partitions(data_dir: Path) -> list[Path]:
    """Every ``date=`` directory of stored events."""
    return sorted(p for p in (data_dir / EVENTS).glob("event_type=*/pipeline_id=*/date=*"))


def event_files(
    data_dir: Path,
    event_type: str | None = None,
    pipeline_id: str | None = None,
    since_ms: int | None = None,
    until_ms: int | None = None,
) -> list[Path]:
    """Stored event files, narrowed by directory to one event type and/or pipeline,
    and to the dates that can hold processing times in [``since_ms``, ``until_ms``]."""
    types = f"event_type={encode_value(event_type)}" if event_type else "event_type=*"
    pipes = f"pipeline_id={encode_value(pipeline_id)}" if pipeline_id else "pipeline_id=*"
    files = (data_dir / EVENTS).glob(f"{types}/{pipes}/date=*/*.parquet")
    if since_ms is not None:
        first = f"date={utc_date(since_ms)}"
        files = (f for f in files if f.parent.name >= first)
    if until_ms is not None:
        last = f"date={utc_date(until_ms)}"
        files = (f for f in files if f.parent.name <= last)
    return sorted(files)


def dead_letter_dir(data_dir: Path, date: str) -> Path:
    return data_dir / DEAD_LETTERS / f"date={date}"


def kafka_file_name(topic: str, partition: int, first: int, last: int) -> str:
    """Same offsets, same name: a replayed range overwrites instead of duplicating."""
    return f"{encode_value(topic)}-{partition}-{first:020d}-{last:020d}.parquet"
