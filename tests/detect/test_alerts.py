"""Webhook alerts against a real local HTTP receiver."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from faro.detect import Detector
from faro.detect.alerts import WebhookNotifier
from tests.detect.flushes import MIN, T0, flushes


class Receiver:
    """Records JSON bodies; answers ``failures`` 503s first, then 200s."""

    def __init__(self, failures: int = 0) -> None:
        self.bodies: list[dict] = []
        self.attempts = 0
        self.failures = failures
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.attempts += 1
                if receiver.attempts <= receiver.failures:
                    self.send_response(503)
                else:
                    receiver.bodies.append(json.loads(body))
                    self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, n: int, timeout: float = 10) -> list[dict]:
        deadline = time.monotonic() + timeout
        while len(self.bodies) < n and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.bodies


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(failures=2)
    yield r
    r.server.shutdown()


def test_open_and_resolve_are_posted_once_each_with_retries(tmp_path, receiver):
    flushes(tmp_path, range(0, 10))
    notifier = WebhookNotifier(receiver.url, backoff_s=0.05)
    detector = Detector(tmp_path, notifier=notifier)
    silent_at = T0 + 20 * MIN  # last flush at minute 9: 11 minutes of silence
    opened = detector.run(silent_at).opened
    assert [t.violation.type for t in opened] == ["FRESHNESS"]
    detector.run(silent_at)  # the same run again: nothing new to say
    flushes(tmp_path, range(20, 25))
    resolved = detector.run(T0 + 25 * MIN).resolved
    assert [t.violation.violation_id for t in resolved] == [opened[0].violation.violation_id]
    notifier.close()
    bodies = receiver.wait_for(2)
    assert [b["status"] for b in bodies] == ["OPEN", "RESOLVED"]
    assert receiver.attempts == 4  # two 503s retried, then one POST each
    vid = opened[0].violation.violation_id
    assert all(b["violation"]["violation_id"] == vid for b in bodies)
    assert "FRESHNESS" in bodies[0]["text"] and "pay/score" in bodies[0]["text"]
    assert notifier.sent == 2 and notifier.failed == 0


def test_a_dead_receiver_never_blocks_detection(tmp_path):
    flushes(tmp_path, range(0, 10))
    # Nothing listens on this port: every POST fails and is retried in the background.
    notifier = WebhookNotifier("http://127.0.0.1:9/hook", retries=3, backoff_s=0.5)
    detector = Detector(tmp_path, notifier=notifier)
    start = time.monotonic()
    assert detector.run(T0 + 20 * MIN).opened
    assert time.monotonic() - start < 1.5  # three retries would take 3.5 s
    notifier.close(timeout=10)
    assert notifier.failed == 1 and notifier.sent == 0


def test_a_webhook_must_be_an_http_url():
    with pytest.raises(ValueError, match="http"):
        WebhookNotifier("slack.example.com/hook")
