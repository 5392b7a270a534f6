"""Batched POSTs of CaptureEvents: to faro-api's /ingest or any webhook receiver."""

from __future__ import annotations

import gzip
import http.client
import time
from collections.abc import Mapping
from urllib.parse import urlsplit

from faro.core.avro_codec import encode_container
from faro.core.events import CaptureEvent
from faro.core.json_codec import to_json_array
from faro.core.settings import settings
from faro.sinks.base import BaseSink

_RETRYABLE = frozenset({408, 425, 429, 500, 502, 503, 504})


class BatchingHttpSink(BaseSink):
    """Buffers events and POSTs them ``batch_size`` at a time; subclasses encode.

    Runs in the caller's thread: a POST happens inside ``emit`` when a batch
    fills up, or when the oldest buffered event has waited ``linger_s`` (so a
    slow pipeline's events do not sit until 500 accumulate). Without a thread
    of its own the sink only looks at the clock when an event arrives; wrap it
    in ``AsyncCaptureEventSink``, which also flushes when the stream goes
    idle, and POSTs leave the operator thread too.
    A POST that still fails after ``max_retries`` (5xx, 429, network error,
    timeout) drops its batch and opens a cool-down during which further
    batches are dropped at once instead of waiting on a dead endpoint; 4xx
    answers are not retried. Not thread-safe.
    """

    def __init__(
        self,
        url: str,
        *,
        batch_size: int | None = None,
        linger_s: float | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        headers: Mapping[str, str] | None = None,
        compress: bool = True,
    ):
        super().__init__()
        cfg = settings()
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"url must look like http://host:port/path, got {url!r}")
        self.url = url
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.batch_size = batch_size or cfg.http_batch_size
        self.linger_s = cfg.http_linger_s if linger_s is None else linger_s
        self._timeout = timeout or cfg.http_timeout_s
        self._retries = cfg.http_max_retries if max_retries is None else max_retries
        self._backoff = cfg.http_backoff_s
        self._headers = dict(headers or {})
        self._compress = compress
        self._buffer: list[CaptureEvent] = []
        self._oldest = 0.0
        self._conn: http.client.HTTPConnection | None = None
        self._down_until = 0.0

    def _encode(self, events: list[CaptureEvent]) -> tuple[bytes, str]:
        raise NotImplementedError

    def emit_batch(self, events: list[CaptureEvent]) -> None:
        now = time.monotonic()
        if not self._buffer:
            self._oldest = now
        self._buffer.extend(events)
        while len(self._buffer) >= self.batch_size:
            batch = self._buffer[: self.batch_size]
            del self._buffer[: self.batch_size]
            self._send(batch)
            self._oldest = now  # what is left arrived in this call
        if self._buffer and now - self._oldest >= self.linger_s:
            batch, self._buffer = self._buffer, []
            self._send(batch)

    def flush(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        ok = True
        while self._buffer:
            if deadline is not None and time.monotonic() >= deadline:
                self.dropped += len(self._buffer)
                self.failures.record(f"flush timed out; {len(self._buffer)} events dropped")
                self._buffer.clear()
                return False
            batch = self._buffer[: self.batch_size]
            del self._buffer[: self.batch_size]
            ok = self._send(batch) and ok
        return ok

    def close(self) -> None:
        self.flush(settings().async_close_timeout_s)
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _send(self, batch: list[CaptureEvent]) -> bool:
        if time.monotonic() < self._down_until:
            self.dropped += len(batch)
            self.failures.record(f"{self.url} is cooling down after failures; batch dropped")
            return False
        try:
            body, content_type = self._encode(batch)
        except Exception as exc:
            self.dropped += len(batch)
            self.failures.record("encoding a batch failed; batch dropped", exc)
            return False
        headers = {"Content-Type": content_type, **self._headers}
        if self._compress:
            body = gzip.compress(body, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        delay = self._backoff
        for attempt in range(self._retries + 1):
            status, error = self._post_once(body, headers)
            if status is not None and 200 <= status < 300:
                self.emitted += len(batch)
                return True
            if status is not None and status not in _RETRYABLE:
                break
            if attempt < self._retries:
                time.sleep(delay)
                delay *= 2
        else:
            self._down_until = time.monotonic() + max(1.0, delay)
        self.dropped += len(batch)
        what = f"HTTP {status}" if status is not None else f"{type(error).__name__}: {error}"
        self.failures.record(f"POST {self.url} failed ({what}); {len(batch)} events dropped")
        return False

    def _post_once(
        self, body: bytes, headers: dict[str, str]
    ) -> tuple[int | None, BaseException | None]:
        try:
            if self._conn is None:
                cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
                self._conn = cls(self._host, self._port, timeout=self._timeout)
            self._conn.request("POST", self._path, body=body, headers=headers)
            response = self._conn.getresponse()
            response.read()
            if response.will_close:
                self._conn.close()
                self._conn = None
            return response.status, None
        except (OSError, http.client.HTTPException) as exc:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            return None, exc


class HttpCaptureEventSink(BatchingHttpSink):
    """POSTs batches as an Avro object container (``application/avro``, default)
    or a JSON array (``application/json``), gzip-compressed unless told not to.

    ``bearer_token`` adds ``Authorization: Bearer …`` for a faro-api started
    with ``FARO_API_TOKEN``.
    """

    def __init__(
        self,
        url: str,
        *,
        format: str = "avro",
        bearer_token: str | None = None,
        batch_size: int | None = None,
        linger_s: float | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        headers: Mapping[str, str] | None = None,
        compress: bool = True,
    ):
        if format not in ("avro", "json"):
            raise ValueError(f"format must be 'avro' or 'json', got {format!r}")
        all_headers = dict(headers or {})
        if bearer_token:
            all_headers["Authorization"] = f"Bearer {bearer_token}"
        super().__init__(
            url,
            batch_size=batch_size,
            linger_s=linger_s,
            timeout=timeout,
            max_retries=max_retries,
            headers=all_headers,
            compress=compress,
        )
        self.format = format

    def _encode(self, events: list[CaptureEvent]) -> tuple[bytes, str]:
        if self.format == "avro":
            return encode_container(events), "application/avro"
        return to_json_array(events), "application/json"
