"""Avro encodings of CaptureEvents, driven by the shipped ``capture_event.avsc``.

Two framings, both standard so any Avro implementation can read them:

* single-object encoding (Kafka messages): ``C3 01`` marker, the schema's
  8-byte little-endian CRC-64-AVRO fingerprint, then the binary payload;
* object container files (HTTP batches, ``application/avro``).
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any

import fastavro
from fastavro.schema import fingerprint, to_parsing_canonical_form

from faro.core import avro_binary
from faro.core.events import CaptureEvent

if TYPE_CHECKING:
    from faro.core.drafts import EntityEventTemplate

SINGLE_OBJECT_MARKER = b"\xc3\x01"


class CaptureEventDecodeError(ValueError):
    """Bytes that are not a CaptureEvent this version of faro can read."""


@lru_cache(maxsize=1)
def schema_json() -> dict[str, Any]:
    """The CaptureEvent schema as shipped in the package."""
    text = resources.files("faro.core").joinpath("schema/capture_event.avsc").read_text()
    schema: dict[str, Any] = json.loads(text)
    return schema


@lru_cache(maxsize=1)
def parsed_schema() -> Any:
    return fastavro.parse_schema(schema_json())


@lru_cache(maxsize=1)
def schema_fingerprint() -> bytes:
    """CRC-64-AVRO of the parsing canonical form, in header (little-endian) byte order."""
    return bytes.fromhex(fingerprint(to_parsing_canonical_form(schema_json()), "CRC-64-AVRO"))


def encode_single_object(event: CaptureEvent) -> bytes:
    return _HEADER + avro_binary.encode(event)


_HEADER = SINGLE_OBJECT_MARKER + schema_fingerprint()


def entity_single_object_encoder(template: EntityEventTemplate) -> avro_binary.EntityEncoder:
    """:func:`encode_single_object` for the ENTITY events of ``template``, which
    need not be built first: see :func:`faro.core.avro_binary.entity_encoder`."""
    return avro_binary.entity_encoder(_HEADER, template)


def decode_single_object(data: bytes) -> CaptureEvent:
    """Raises :class:`CaptureEventDecodeError` saying which part of the frame is wrong."""
    if len(data) < 10 or data[:2] != SINGLE_OBJECT_MARKER:
        raise CaptureEventDecodeError(
            "not Avro single-object encoded: expected marker C3 01 followed by an 8-byte "
            f"fingerprint, got {data[:10].hex() or 'empty message'}"
        )
    if data[2:10] != schema_fingerprint():
        raise CaptureEventDecodeError(
            f"unknown schema fingerprint {data[2:10].hex()}; this faro reads "
            f"{schema_fingerprint().hex()} (capture_event.avsc); upgrade the reader or the writer"
        )
    try:
        record = fastavro.schemaless_reader(io.BytesIO(data[10:]), parsed_schema(), None)
    except Exception as exc:  # fastavro raises EOFError, ValueError, IndexError...
        raise CaptureEventDecodeError(
            f"corrupt Avro payload: {type(exc).__name__}: {exc}"
        ) from None
    return _event(record)


CONTAINER_BLOCK_EVENTS = 1_000
"""Events per block of a container: blocks let a reader split a large body and
decode its parts in parallel (``/ingest`` does)."""


def encode_container(events: list[CaptureEvent]) -> bytes:
    """An uncompressed object container (HTTP gzips the whole body)."""
    encoded = [avro_binary.encode(e) for e in events]
    blocks = (
        encoded[start : start + CONTAINER_BLOCK_EVENTS]
        for start in range(0, len(encoded), CONTAINER_BLOCK_EVENTS)
    )
    return b"".join(container_chunks(blocks, os.urandom(16)))


def container_chunks(blocks: Iterable[Sequence[bytes]], sync: bytes) -> Iterator[bytes]:
    """An uncompressed object container of records already encoded, one block per
    sequence, as chunks to join or to write out one after another."""
    yield _container_header()
    yield sync
    for records in blocks:
        body = b"".join(records)
        yield avro_binary.long_bytes(len(records))
        yield avro_binary.long_bytes(len(body))
        yield body
        yield sync


@lru_cache(maxsize=1)
def _container_header() -> bytes:
    """Magic and the metadata map (schema, codec), up to the sync marker."""
    meta = {"avro.schema": json.dumps(schema_json()).encode(), "avro.codec": b"null"}
    parts = [b"Obj\x01", avro_binary.long_bytes(len(meta))]
    for key, value in meta.items():
        parts += [avro_binary.string_bytes(key), avro_binary.long_bytes(len(value)), value]
    parts.append(b"\x00")
    return b"".join(parts)


def decode_container(data: bytes) -> list[CaptureEvent]:
    """Reads any Avro container whose writer schema resolves to CaptureEvent."""
    try:
        records = list(fastavro.reader(io.BytesIO(data), parsed_schema()))
    except Exception as exc:
        raise CaptureEventDecodeError(
            f"not a readable Avro object container of CaptureEvents: {type(exc).__name__}: {exc}"
        ) from None
    return [_event(r) for r in records]


def _event(record: Any) -> CaptureEvent:
    try:
        return CaptureEvent.from_dict(record)
    except ValueError as exc:
        raise CaptureEventDecodeError(str(exc)) from None
