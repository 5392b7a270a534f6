"""Decodes a batch of Kafka messages (Avro single-object CaptureEvents) into an Arrow table.

Decoding dominates the materializer's cost, and any Python decoder spends
several microseconds per event. So the payloads of a batch are framed as one
block of an Avro object container (they are the same binary encoding) and
decoded by DuckDB's C++ Avro reader, at about a million events per second.
Messages whose single-object header is wrong are rejected one by one first;
if the block still fails to decode, the batch falls back to decoding each
message strictly with fastavro, so one corrupt message costs only its own
dead letter.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import fastavro
import pyarrow as pa

from faro.core import avro_binary
from faro.core.avro_codec import (
    SINGLE_OBJECT_MARKER,
    CaptureEventDecodeError,
    _container_header,
    _event,
    parsed_schema,
    schema_fingerprint,
)
from faro.core.events import CaptureEvent
from faro.store.columns import SCHEMA, events_to_table, invalid_rows

_HEADER = SINGLE_OBJECT_MARKER + schema_fingerprint()
_SYNC = b"faro.sync.marker"
# DuckDB names the branches of feature_value's union u1..u5 in schema order:
# boolean, long, double, string, array<double>.
_SELECT = """
SELECT
    event_id, event_type::VARCHAR AS event_type, schema_version, pipeline_id, operator_id,
    operator_type::VARCHAR AS operator_type, processing_time, subtask_index, features,
    input_count, output_count, late_count, watermark, event_time_min, event_time_max,
    window_start, window_end, batch_id, capture_drop_since_last, dropped_count, feature_stats,
    entity_id, feature_name,
    CASE union_tag(feature_value)
        WHEN 'u3' THEN union_extract(feature_value, 'u3')
        WHEN 'u2' THEN union_extract(feature_value, 'u2')::DOUBLE
        WHEN 'u1' THEN union_extract(feature_value, 'u1')::INTEGER::DOUBLE
    END AS feature_value,
    union_extract(feature_value, 'u2') AS feature_value_long,
    union_extract(feature_value, 'u1') AS feature_value_bool,
    union_extract(feature_value, 'u4') AS feature_value_string,
    union_extract(feature_value, 'u5') AS feature_value_vector,
    value_type::VARCHAR AS value_type, event_time, sample_rate, trace_id
FROM read_avro(?)
"""


@dataclass
class DecodedBatch:
    table: pa.Table
    kept: list[int]  # index in the input of each row of ``table``
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (index, reason)


def connect_with_avro() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the Avro extension from the ``duckdb-extension-avro`` wheel."""
    try:
        import duckdb_extension_avro
    except ImportError:
        raise ImportError(
            "the materializer needs DuckDB's Avro reader: pip install 'faro[api]'"
        ) from None
    base = Path(duckdb_extension_avro.__file__).parent / "extensions" / f"v{duckdb.__version__}"
    path = base / "avro.duckdb_extension"
    if not path.exists():
        raise ImportError(
            f"no Avro extension for DuckDB {duckdb.__version__} in duckdb-extension-avro; "
            "install the matching pair, as pinned in faro's 'api' extra"
        )
    db = duckdb.connect(config={"enable_external_file_cache": False})
    db.execute(f"LOAD '{path}'")
    return db


class AvroBatchDecoder:
    """Not thread-safe. ``scratch_dir`` holds one temporary file per batch."""

    def __init__(self, scratch_dir: Path) -> None:
        scratch_dir.mkdir(parents=True, exist_ok=True)
        self._scratch_dir = scratch_dir
        self._batches = 0
        self._db = connect_with_avro()

    def decode(self, messages: list[bytes]) -> DecodedBatch:
        kept: list[int] = []
        rejected: list[tuple[int, str]] = []
        payloads: list[bytes] = []
        for i, message in enumerate(messages):
            if message is not None and message[:10] == _HEADER:
                kept.append(i)
                payloads.append(message[10:])
            else:
                rejected.append((i, _header_problem(message)))
        try:
            batch = DecodedBatch(self._decode_block(payloads), kept, rejected)
        except duckdb.Error:
            batch = self._decode_one_by_one(messages, kept, rejected)
        return _without_invalid(batch)

    def decode_container(self, data: bytes) -> pa.Table:
        """An Avro object container of CaptureEvents (``/ingest``) as a table.

        Raises ``duckdb.Error`` when DuckDB cannot read it as written by faro's
        schema; callers fall back to the generic reader, whose errors explain more.
        """
        self._batches += 1
        scratch = self._scratch_dir / f"container-{os.getpid()}-{self._batches}.avro"
        scratch.write_bytes(data)
        try:
            table = self._db.execute(_SELECT, [str(scratch)]).to_arrow_table()
        finally:
            scratch.unlink()
        return table.cast(SCHEMA)

    def _decode_block(self, payloads: list[bytes]) -> pa.Table:
        if not payloads:
            return SCHEMA.empty_table()
        body = b"".join(payloads)
        # A fresh name per batch: DuckDB caches file contents by path.
        self._batches += 1
        scratch = self._scratch_dir / f"batch-{os.getpid()}-{self._batches}.avro"
        with open(scratch, "wb") as f:
            f.write(_container_header())
            f.write(_SYNC)
            f.write(avro_binary.long_bytes(len(payloads)))
            f.write(avro_binary.long_bytes(len(body)))
            f.write(body)
            f.write(_SYNC)
        try:
            table = self._db.execute(_SELECT, [str(scratch)]).to_arrow_table()
        finally:
            scratch.unlink()
        if table.num_rows != len(payloads):
            raise duckdb.InvalidInputException(
                f"block decoded to {table.num_rows} rows, expected {len(payloads)}"
            )
        return table.cast(SCHEMA)

    def _decode_one_by_one(
        self, messages: list[bytes], candidates: list[int], rejected: list[tuple[int, str]]
    ) -> DecodedBatch:
        kept = []
        events = []
        for i in candidates:
            try:
                events.append(decode_strict(messages[i]))
                kept.append(i)
            except CaptureEventDecodeError as exc:
                rejected.append((i, str(exc)))
        rejected.sort()
        return DecodedBatch(events_to_table(events), kept, rejected)


def _without_invalid(batch: DecodedBatch) -> DecodedBatch:
    """Moves rows that decode but cannot be stored (see ``invalid_rows``) to rejected."""
    problems = invalid_rows(batch.table)
    if not problems:
        return batch
    keep = [i for i in range(batch.table.num_rows) if i not in problems]
    rejected = batch.rejected + [(batch.kept[i], reason) for i, reason in problems.items()]
    return DecodedBatch(
        batch.table.take(pa.array(keep, pa.int64())),
        [batch.kept[i] for i in keep],
        sorted(rejected),
    )


def decode_strict(message: bytes) -> CaptureEvent:
    """One message, rejecting trailing bytes too (they would corrupt a block)."""
    buf = io.BytesIO(message)
    buf.seek(10)
    try:
        record = fastavro.schemaless_reader(buf, parsed_schema(), None)
    except Exception as exc:  # fastavro raises EOFError, ValueError, IndexError...
        raise CaptureEventDecodeError(
            f"corrupt Avro payload: {type(exc).__name__}: {exc}"
        ) from None
    left = len(message) - buf.tell()
    if left:
        raise CaptureEventDecodeError(f"corrupt Avro payload: {left} bytes after the last field")
    return _event(record)


def _header_problem(message: bytes | None) -> str:
    if not message:
        return "empty message (a tombstone or a producer bug): not a CaptureEvent"
    if message[:2] != SINGLE_OBJECT_MARKER or len(message) < 10:
        return (
            "not Avro single-object encoded: expected marker C3 01 and an 8-byte "
            f"fingerprint, got {message[:10].hex()}"
        )
    return (
        f"unknown schema fingerprint {message[2:10].hex()}; this faro reads "
        f"{schema_fingerprint().hex()} (capture_event.avsc)"
    )
