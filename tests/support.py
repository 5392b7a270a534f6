"""Test doubles that are real things: an in-memory sink and a real HTTP receiver."""

from __future__ import annotations

import gzip
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from faro.core.events import CaptureEvent, EventType
from faro.core.sink import CaptureEventSink

if sys.version_info >= (3, 11):
    import tomllib
else:  # faro supports 3.10, where the tomli package is what became tomllib
    import tomli as tomllib

__all__ = ["tomllib"]  # re-exported for the tests that read TOML


class ListSink:
    """A user-style sink (plain emit/flush/close, no faro base class) that keeps events."""

    def __init__(self) -> None:
        self.events: list[CaptureEvent] = []
        self.closed = False

    def emit(self, event: CaptureEvent) -> None:
        self.events.append(event)

    def flush(self, timeout: float | None = None) -> bool:
        return True

    def close(self) -> None:
        self.closed = True

    def of_type(self, event_type: EventType) -> list[CaptureEvent]:
        return [e for e in self.events if e.event_type is event_type]


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """What a local HTTP server got; ``behaviour`` decides each answer."""

    url: str
    requests: list[Received] = field(default_factory=list)
    behaviour: Callable[[int], int | None] = lambda n: 200
    """Given the request number (0-based), the status to answer, or None to hang."""
    release: threading.Event = field(default_factory=threading.Event)


@contextmanager
def http_receiver(behaviour: Callable[[int], int | None] = lambda n: 200) -> Iterator[Receiver]:
    receiver = Receiver(url="", behaviour=behaviour)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            with lock:
                n = len(receiver.requests)
                receiver.requests.append(Received(self.path, dict(self.headers), body))
            status = receiver.behaviour(n)
            if status is None:
                receiver.release.wait(30)
                return
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield receiver
    finally:
        receiver.release.set()
        server.shutdown()
        server.server_close()


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def p99_emit_seconds(sink: CaptureEventSink, events: list[CaptureEvent]) -> float:
    """Emits every event, timing each call; returns the 99th percentile."""
    timings = []
    for e in events:
        start = time.perf_counter()
        sink.emit(e)
        timings.append(time.perf_counter() - start)
    timings.sort()
    return timings[int(len(timings) * 0.99)]


def read_topic(
    bootstrap: str, topic: str, done: Callable[[list[Any]], bool], timeout: float = 30.0
) -> list[Any]:
    """Every message of ``topic``, all partitions from the start (no consumer group, so
    no rebalance to wait for), until ``done(messages)`` holds or ``timeout`` passes."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "unused", "enable.auto.commit": False}
    )
    messages: list[Any] = []
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        deadline = time.monotonic() + timeout
        while not done(messages) and time.monotonic() < deadline:
            for message in consumer.consume(1000, 0.5):
                assert message.error() is None, message.error()
                messages.append(message)
    finally:
        consumer.close()
    return messages


def new_topic(bootstrap: str, partitions: int = 3) -> str:
    """A fresh topic on the test broker, so tests never see each other's messages."""
    from confluent_kafka.admin import AdminClient, NewTopic

    topic = f"faro-test-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics(
        [NewTopic(topic, num_partitions=partitions, replication_factor=1)]
    )
    futures[topic].result(10)
    return topic
