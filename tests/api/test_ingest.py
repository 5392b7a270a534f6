"""POST /ingest: both formats, gzip, auth, limits, and a real server fed by the HTTP sink."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from faro import HttpCaptureEventSink
from faro.api import create_app
from faro.core.avro_codec import encode_container
from faro.core.json_codec import to_json, to_json_array
from faro.core.settings import FaroSettings
from tests.api.serving import running_api
from tests.sinks.events import mixed_events
from tests.store.events import stored_rows


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "store"


def _client(store: Path, **overrides: object) -> TestClient:
    return TestClient(create_app(store, FaroSettings(**overrides)))  # type: ignore[arg-type]


def _ids(store: Path) -> list[str]:
    return [r[0] for r in stored_rows(store, "event_id")]


def test_json_array_object_and_avro_container_are_stored(store: Path) -> None:
    events = mixed_events(300)
    client = _client(store)
    r = client.post("/ingest", content=to_json_array(events[:100]),
                    headers={"content-type": "application/json"})  # fmt: skip
    assert r.status_code == 200 and r.json()["accepted"] == 100
    r = client.post("/ingest", content=to_json(events[100]),
                    headers={"content-type": "application/json"})  # fmt: skip
    assert r.json()["accepted"] == 1
    r = client.post(
        "/ingest", content=gzip.compress(encode_container(events[101:])),
        headers={"content-type": "application/avro", "content-encoding": "gzip"},
    )  # fmt: skip
    assert r.json()["accepted"] == 199
    assert sorted(_ids(store)) == sorted(e.event_id for e in events)
    again = client.post("/ingest", content=to_json_array(events[:10]),
                        headers={"content-type": "application/json"})  # fmt: skip
    assert again.json()["accepted"] == 10  # a retry is stored again: dedup is per batch


@pytest.mark.parametrize(
    ("body", "headers", "status", "says"),
    [
        (b'[{"event_id": 1}]', {"content-type": "application/json"}, 400, "event_id must be"),
        (b"not json", {"content-type": "application/json"}, 400, "not valid CaptureEvents"),
        (b"Obj\x01garbage", {"content-type": "application/avro"}, 400, "object container"),
        (b"[]", {"content-type": "text/plain"}, 415, "Content-Type must be"),
        (b"plain", {"content-type": "application/json", "content-encoding": "gzip"}, 400, "gzip"),
    ],
)
def test_bad_bodies_are_4xx_with_a_message_and_store_nothing(
    store: Path, body: bytes, headers: dict[str, str], status: int, says: str
) -> None:
    r = _client(store).post("/ingest", content=body, headers=headers)
    assert r.status_code == status
    assert says in r.json()["detail"]
    assert _ids(store) == []


def test_one_unstorable_event_rejects_the_whole_body(store: Path) -> None:
    events = mixed_events(5)
    events[3].processing_time = -1
    r = _client(store).post("/ingest", content=to_json_array(events),
                            headers={"content-type": "application/json"})  # fmt: skip
    assert r.status_code == 400 and "event 3" in r.json()["detail"]
    assert _ids(store) == []


def test_token_and_size_limits(store: Path) -> None:
    client = _client(store, api_token="s3cret", ingest_max_bytes=2000)
    body = to_json_array(mixed_events(2))
    json_type = {"content-type": "application/json"}
    assert client.post("/ingest", content=body, headers=json_type).status_code == 401
    wrong = {**json_type, "authorization": "Bearer nope"}
    assert client.post("/ingest", content=body, headers=wrong).status_code == 401
    ok = {**json_type, "authorization": "Bearer s3cret"}
    assert client.post("/ingest", content=body, headers=ok).status_code == 200
    big = to_json_array(mixed_events(50))
    r = client.post("/ingest", content=big, headers=ok)
    assert r.status_code == 413 and "2000-byte limit" in r.json()["detail"]
    bomb = gzip.compress(b"[" + b" " * 100_000 + b"]")
    r = client.post("/ingest", content=bomb, headers={**ok, "content-encoding": "gzip"})
    assert r.status_code == 413 and "decompressed" in r.json()["detail"]


@pytest.fixture
def server(store: Path) -> Iterator[str]:
    with running_api(store) as url:
        yield url


@pytest.mark.parametrize("fmt", ["avro", "json"])
def test_the_http_sink_delivers_into_a_real_server(store: Path, server: str, fmt: str) -> None:
    events = mixed_events(1200)
    sink = HttpCaptureEventSink(f"{server}/ingest", format=fmt)
    for e in events:
        sink.emit(e)
    assert sink.flush(30)
    sink.close()
    assert sorted(_ids(store)) == sorted(e.event_id for e in events)
    lineage = httpx.get(f"{server}/entities/user-5/lineage").json()
    assert len(lineage["steps"]) == sum(1 for e in events if e.entity_id == "user-5")


def test_concurrent_posts_each_store_their_events_once(store: Path, server: str) -> None:
    """One request decodes while another writes; every body still lands whole."""
    events = mixed_events(8000)
    bodies = [encode_container(events[i : i + 500]) for i in range(0, len(events), 500)]

    def post(body: bytes) -> int:
        r = httpx.post(f"{server}/ingest", content=body,
                       headers={"content-type": "application/avro"}, timeout=30)  # fmt: skip
        r.raise_for_status()
        accepted: int = r.json()["accepted"]
        return accepted

    with ThreadPoolExecutor(4) as pool:
        accepted = list(pool.map(post, bodies))
    assert accepted == [500] * len(bodies)
    ids = _ids(store)
    assert len(ids) == len(events) and set(ids) == {e.event_id for e in events}
