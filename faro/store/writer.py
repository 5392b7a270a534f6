"""Writes batches of CaptureEvents into the Parquet store: the one write path.

The materializer and the API's ``/ingest`` both call :class:`EventWriter`.
A batch is deduplicated by ``event_id``, split into one file per Hive
partition and Kafka partition, written as zstd Parquet into staging and
moved into place as one journaled change. A file of more than one row group
is sorted so that row-group statistics prune per-entity lookups (entity,
then feature, operator and time).
"""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from faro.store import layout
from faro.store.columns import SCHEMA
from faro.store.journal import Change, Journal, fsync_file

# A per-entity lookup decodes one row group per file, unique strings (trace and event
# ids) included: halving the group from 32 Ki rows takes ~25 % off entity values and
# lineage at 10 M events, and full scans stay within noise.
ROW_GROUP_SIZE = 16_384
# A batch's partition files are written side by side: Arrow's Parquet writer and
# fsync release the GIL (4.1-4.2 -> 3.4 us per event for /ingest's mixed batches).
_POOL = ThreadPoolExecutor(2, thread_name_prefix="faro-write")
KAFKA_PARTITION = "_kafka_partition"
_DAY_MS = 86_400_000
_EPOCH = dt.date(1970, 1, 1)
# The row order inside a file of several row groups: entity first, because per-entity
# lookups (values, lineage) are the selective ones and row-group statistics can only
# skip groups along the leading key.
_ROW_ORDER = [(k, "ascending") for k in ("entity_id", "feature_name", "operator_id",
                                          "processing_time")]  # fmt: skip
# Random ids: their min and max span every file, so statistics on them prune nothing.
_UNPRUNABLE = {"event_id", "trace_id"}


@dataclass
class KafkaSource:
    """Where a batch came from: names its files and the offsets it stores."""

    topic: str
    ranges: dict[int, tuple[int, int]]  # partition -> (first, last) offset consumed


@dataclass
class WriteSummary:
    rows: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    files: list[str] = field(default_factory=list)


class EventWriter:
    """Not thread-safe; one per writing process and data directory."""

    def __init__(self, data_dir: Path | str, kind: str) -> None:
        self.data_dir = Path(data_dir)
        self.journal = Journal(self.data_dir, kind)
        self._kind = kind

    def recover(self) -> int:
        return self.journal.recover()

    def write(
        self,
        table: pa.Table,
        source: KafkaSource | None = None,
        dead_letters: pa.Table | None = None,
        progress: dict[str, dict[str, int]] | None = None,
    ) -> WriteSummary:
        """Stores ``table`` (columns of :data:`faro.store.columns.SCHEMA`, plus
        ``_kafka_partition`` when ``source`` is given) and any dead letters, atomically,
        with how far the batch reaches in its source: ``source``'s offsets, or
        ``progress`` for other sources (stored with the offsets, see :meth:`Journal.offsets`)."""
        summary = WriteSummary()
        change = Change()
        if table.num_rows:
            self._stage_events(table, source, change, summary)
        if dead_letters is not None and dead_letters.num_rows:
            self._stage_dead_letters(dead_letters, source, change)
            summary.dead_letters = dead_letters.num_rows
        if source is not None:
            change.offsets = {
                source.topic: {str(p): last for p, (_, last) in source.ranges.items()}
            }
        change.offsets.update(progress or {})
        if change.moves or change.offsets:
            self.journal.apply(change)
        summary.files = [final for _, final in change.moves]
        return summary

    def _stage_events(
        self, table: pa.Table, source: KafkaSource | None, change: Change, summary: WriteSummary
    ) -> None:
        unique = _first_of_each_event_id(table)
        summary.rows = unique.num_rows
        summary.duplicates = table.num_rows - unique.num_rows
        if source is None:
            # A constant, not nulls: Arrow's group_by splits an all-null key into many groups.
            no_partition = pa.repeat(pa.scalar(-1, pa.int32()), unique.num_rows)
            unique = unique.append_column(KAFKA_PARTITION, no_partition)
        day = pc.divide(unique.column("processing_time"), _DAY_MS)  # validated >= 0
        data = unique.select(SCHEMA.names).cast(SCHEMA)
        writes = []
        for (event_type, pipeline_id, days, kafka_partition), rows in _files(
            data, day, unique.column(KAFKA_PARTITION)
        ):
            date = (_EPOCH + dt.timedelta(days=days)).isoformat()
            target = layout.partition_dir(self.data_dir, event_type, pipeline_id, date)
            if source is not None:
                first, last = source.ranges[kafka_partition]
                name = layout.kafka_file_name(source.topic, kafka_partition, first, last)
            else:
                name = f"{self._kind}-{uuid.uuid4().hex}.parquet"
            staged = self.journal.staging_path()
            writes.append((rows, staged))
            change.moves.append(
                (self.journal.relative(staged), self.journal.relative(target / name))
            )
        list(_POOL.map(lambda w: write_parquet(*w), writes))

    def _stage_dead_letters(
        self, dead: pa.Table, source: KafkaSource | None, change: Change
    ) -> None:
        date = layout.utc_date(int(dead.column("received_at")[0].as_py()))
        if source is not None:
            ranges = sorted(source.ranges.items())
            p, (first, last) = ranges[0]
            name = layout.kafka_file_name(source.topic, p, first, last)
        else:
            name = f"{self._kind}-{uuid.uuid4().hex}.parquet"
        staged = self.journal.staging_path()
        write_parquet(dead, staged)
        target = layout.dead_letter_dir(self.data_dir, date) / name
        change.moves.append((self.journal.relative(staged), self.journal.relative(target)))


FileKey = tuple[str, str, int, int]
"""Event type, pipeline id, UTC day number and Kafka partition (-1 without Kafka)."""


def _files(
    data: pa.Table, day: pa.ChunkedArray, kafka_partition: pa.ChunkedArray
) -> list[tuple[FileKey, pa.Table]]:
    """Splits a batch into its files: one per event type, pipeline, day and Kafka partition.

    The split sorts integer codes (the two string keys' dictionary indices), which
    Arrow does in a fraction of the time strings take. A file's rows are then put
    entity first only when the file holds more than one row group: statistics
    cannot skip anything inside a group, so in a file of one group the order buys
    nothing. That skipped sort was ~3 ms of a 25,000-event batch's ~30 ms write.
    """
    event_type = pc.dictionary_encode(data.column("event_type").combine_chunks())
    pipeline = pc.dictionary_encode(data.column("pipeline_id").combine_chunks())
    keys = pa.table(
        {"t": event_type.indices, "p": pipeline.indices, "d": day, "k": kafka_partition}
    )
    order = pc.sort_indices(keys, [(c, "ascending") for c in keys.column_names])
    codes = [c.to_numpy() for c in keys.take(order).combine_chunks().columns]
    rows = data.take(order)
    n = rows.num_rows
    starts = np.ones(n, bool)  # a file starts wherever any key differs from the row before
    starts[1:] = np.any([c[1:] != c[:-1] for c in codes], axis=0)
    bounds = [*np.flatnonzero(starts).tolist(), n]
    files = []
    for start, end in itertools.pairwise(bounds):
        file = rows.slice(start, end - start)
        if file.num_rows > ROW_GROUP_SIZE:
            file = file.sort_by(_ROW_ORDER)
        t, p, d, k = (int(c[start]) for c in codes)
        key = (event_type.dictionary[t].as_py(), pipeline.dictionary[p].as_py(), d, k)
        files.append((key, file))
    return files


def _first_of_each_event_id(table: pa.Table) -> pa.Table:
    """Redelivered events (same event_id) keep their first occurrence."""
    ids = table.column("event_id")
    if pc.count_distinct(ids).as_py() == table.num_rows:
        return table
    indexed = table.append_column("_row", pa.array(range(table.num_rows), pa.int64()))
    first = indexed.group_by("event_id", use_threads=False).aggregate([("_row", "min")])
    keep = pc.sort_indices(first.column("_row_min"))
    return table.take(pc.take(first.column("_row_min"), keep))


# Columns with few distinct values per file. Arrow dictionary-encodes every column by
# default and gives up on the unique ones (ids, times, values) only after paying
# for it; naming these made files ~20 % smaller and writes 15-30 % faster.
_DICTIONARY_COLUMNS = [
    "event_type", "schema_version", "pipeline_id", "operator_id", "operator_type",
    "subtask_index", "features.list.element", "feature_stats.list.element.name",
    "entity_id", "feature_name", "value_type", "sample_rate",
    "topic", "partition", "reason",  # dead letters
]  # fmt: skip


def write_parquet(table: pa.Table, path: Path) -> None:
    pq.write_table(
        table,
        path,
        compression="zstd",
        row_group_size=ROW_GROUP_SIZE,
        use_dictionary=_DICTIONARY_COLUMNS,
        write_statistics=[c for c in _leaf_columns(table.schema) if c not in _UNPRUNABLE],
    )
    fsync_file(path)


def _leaf_columns(schema: pa.Schema) -> list[str]:
    """Parquet's column paths (``features.list.element``), as writer options name them."""

    def leaves(path: str, type_: pa.DataType) -> list[str]:
        if pa.types.is_list(type_):
            return leaves(f"{path}.list.element", type_.value_type)
        if pa.types.is_struct(type_):
            return [leaf for f in type_ for leaf in leaves(f"{path}.{f.name}", f.type)]
        return [path]

    return [leaf for f in schema for leaf in leaves(f.name, f.type)]


DEAD_LETTER_SCHEMA = pa.schema(
    [
        ("topic", pa.string()),
        ("partition", pa.int32()),
        ("offset", pa.int64()),
        ("key", pa.binary()),
        ("value", pa.binary()),
        ("reason", pa.string()),
        ("received_at", pa.int64()),
    ]
)
