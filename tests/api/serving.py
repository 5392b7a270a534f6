"""The API over a store of given events: in-process (``TestClient``), or as a real
`faro serve` subprocess on a free port for tests that need HTTP for real."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from fastapi.testclient import TestClient

from faro import CaptureEvent
from faro._dev.broker import free_port
from faro.api import create_app
from faro.store.columns import events_to_table
from faro.store.writer import EventWriter


@contextmanager
def running_api(store: Path, **env: str) -> Iterator[str]:
    """Yields the base URL once /healthz answers; stops the server afterwards."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "faro.cli", "serve", "--data-dir", str(store), "--port", str(port)],
        stderr=subprocess.DEVNULL,
        env={**os.environ, **env},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz").status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.2)
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


@contextmanager
def client_over(events: list[CaptureEvent], store: Path) -> Iterator[TestClient]:
    """A ``TestClient`` of the API over ``store``, holding ``events`` written as one batch."""
    EventWriter(store, "seed").write(events_to_table(events))
    with TestClient(create_app(store)) as client:
        yield client
