"""POST /ingest: CaptureEvents over HTTP, for pipelines without Kafka."""

from __future__ import annotations

import zlib

import duckdb
import pyarrow as pa
from fastapi import APIRouter, HTTPException, Request
from starlette.concurrency import run_in_threadpool

from faro.api.deps import Service, ServiceDep
from faro.api.models import IngestResult
from faro.core.avro_codec import CaptureEventDecodeError, decode_container
from faro.core.json_codec import from_json
from faro.store.columns import events_to_table, invalid_rows
from faro.store.writer import WriteSummary

router = APIRouter(tags=["ingest"])

_FORMATS = "application/json (an event or an array) or application/avro (an object container)"


@router.post(
    "/ingest",
    response_model=IngestResult,
    responses={400: {}, 401: {}, 413: {}, 415: {}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "oneOf": [
                            {"type": "object", "description": "one CaptureEvent"},
                            {"type": "array", "items": {"type": "object"}},
                        ]
                    }
                },
                "application/avro": {"schema": {"type": "string", "format": "binary"}},
            },
        }
    },
)
async def ingest(svc: ServiceDep, request: Request) -> IngestResult:
    """Validates the whole body, then stores it through the store's writer in one
    atomic change: either every event is accepted or none is."""
    _authorize(request, svc.settings.api_token)
    limit = svc.settings.ingest_max_bytes
    body = await _read_limited(request, limit)
    if request.headers.get("content-encoding", "").lower() == "gzip":
        body = _gunzip(body, limit)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in ("application/json", "application/avro", "avro/binary"):
        raise HTTPException(415, f"Content-Type must be {_FORMATS}; got {content_type!r}")
    table = await run_in_threadpool(_decode, svc, body, content_type == "application/json")
    problems = invalid_rows(table)
    if problems:
        i, reason = next(iter(sorted(problems.items())))
        raise HTTPException(400, f"event {i} cannot be stored: {reason}; nothing was stored")
    summary = await run_in_threadpool(_write, svc, table)
    return IngestResult(
        accepted=summary.rows, duplicates=summary.duplicates, files=len(summary.files)
    )


def _decode(svc: Service, body: bytes, is_json: bool) -> pa.Table:
    try:
        if is_json:
            return events_to_table(from_json(body))
        if body[:4] == b"Obj\x01":
            with svc.decode_lock:  # one decoder per process, used by one request at a time
                try:
                    return svc.decoder.decode_container(body)
                except duckdb.Error:
                    pass  # not faro's own schema: the generic reader resolves it or explains
        return events_to_table(decode_container(body))
    except (CaptureEventDecodeError, ValueError) as exc:
        raise HTTPException(400, f"body is not valid CaptureEvents: {exc}") from None


def _write(svc: Service, table: pa.Table) -> WriteSummary:
    with svc.write_lock:  # one writer per process
        return svc.writer.write(table)


def _authorize(request: Request, token: str | None) -> None:
    if token is None:
        return
    if request.headers.get("authorization", "") != f"Bearer {token}":
        raise HTTPException(
            401,
            "POST /ingest needs 'Authorization: Bearer <token>' matching FARO_API_TOKEN",
            headers={"WWW-Authenticate": "Bearer"},
        )


async def _read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"body of {declared} bytes exceeds the {limit}-byte limit")
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"body exceeds the {limit}-byte limit; send smaller batches")
        chunks.append(chunk)
    return b"".join(chunks)


def _gunzip(body: bytes, limit: int) -> bytes:
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise HTTPException(400, f"Content-Encoding is gzip but the body is not: {exc}") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise HTTPException(413, f"body exceeds the {limit}-byte limit once decompressed")
    return out
