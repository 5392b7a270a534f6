"""Webhook alerts on violation open and resolve (``FARO_ALERT_WEBHOOK``).

Detection only enqueues; one worker thread POSTs, retrying with exponential
backoff, so a slow or dead receiver never delays detection. The body is JSON
with a Slack-compatible ``text`` plus the whole violation. Each (violation,
status) pair is sent at most once per process, and a run only reports a
transition once, so receivers see one message per open and one per resolve.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
from typing import Any

from faro.detect.ledger import Transition

log = logging.getLogger("faro.alerts")

_ICON = {"OPEN": ":rotating_light:", "RESOLVED": ":white_check_mark:"}


def payload(transition: Transition) -> dict[str, Any]:
    v = transition.violation
    text = (
        f"{_ICON[transition.status]} faro {v.type} {transition.status.lower()} "
        f"[{v.severity}] {v.message}"
    )
    return {"text": text, "status": transition.status, "violation": v.to_dict()}


class WebhookNotifier:
    """Delivers transitions to ``url``; ``close()`` waits up to ``timeout`` for the rest."""

    def __init__(
        self,
        url: str,
        *,
        retries: int = 5,
        backoff_s: float = 0.5,
        timeout_s: float = 5.0,
        capacity: int = 1000,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"the alert webhook must be an http(s) URL, got {url!r}")
        self.url = url
        self.retries = retries
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s
        self.sent = 0
        self.failed = 0
        self.dropped = 0
        self._queue: queue.Queue[Transition | None] = queue.Queue(capacity)
        self._seen: set[tuple[str, str]] = set()
        self._stopping = threading.Event()
        self._worker = threading.Thread(target=self._run, name="faro-alerts", daemon=True)
        self._worker.start()

    def notify(self, transitions: list[Transition]) -> None:
        """Never blocks: a full queue drops (and counts) the alert."""
        for t in transitions:
            key = (t.violation.violation_id, t.status)
            if key in self._seen:
                continue
            self._seen.add(key)
            try:
                self._queue.put_nowait(t)
            except queue.Full:
                self.dropped += 1
                log.warning("alert queue full; dropped the %s alert of %s", t.status,
                            t.violation.violation_id)  # fmt: skip

    def close(self, timeout: float = 10.0) -> None:
        self._queue.put(None)
        self._worker.join(timeout)
        self._stopping.set()

    def _run(self) -> None:
        while True:
            t = self._queue.get()
            if t is None:
                return
            self._deliver(t)

    def _deliver(self, t: Transition) -> None:
        body = json.dumps(payload(t)).encode()
        delay = self.backoff_s
        problem = ""
        for attempt in range(self.retries + 1):
            request = urllib.request.Request(
                self.url, body, {"Content-Type": "application/json"}, method="POST"
            )
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    response.read()
                self.sent += 1
                return
            except urllib.error.HTTPError as exc:
                problem = f"HTTP {exc.code}"
                if 400 <= exc.code < 500 and exc.code != 429:
                    break  # the receiver rejects this body; retrying will not help
            except (OSError, ValueError) as exc:
                problem = str(exc)
            if attempt < self.retries and not self._stopping.is_set():
                time.sleep(delay)
                delay *= 2
        self.failed += 1
        log.warning("alert for %s (%s) not delivered to %s: %s", t.violation.violation_id,
                    t.status, self.url, problem)  # fmt: skip
