"""JSON form of CaptureEvents: the Avro field names, times as epoch milliseconds."""

from __future__ import annotations

import json
from typing import Any

from faro.core.events import CaptureEvent


def to_json(event: CaptureEvent) -> str:
    return json.dumps(event.to_dict(), separators=(",", ":"))


def to_json_array(events: list[CaptureEvent]) -> bytes:
    return json.dumps([e.to_dict() for e in events], separators=(",", ":")).encode()


def from_json(text: str | bytes) -> list[CaptureEvent]:
    """Parses one event object or an array of them.

    Raises ``ValueError`` with the position of the first bad event, so an
    ingest endpoint can tell the sender exactly what to fix.
    """
    try:
        data: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"body is not valid JSON: {exc}") from None
    items = data if isinstance(data, list) else [data]
    events = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ValueError(f"event {i} must be a JSON object, got {type(item).__name__}")
        try:
            events.append(CaptureEvent.from_dict(item))
        except ValueError as exc:
            raise ValueError(f"event {i}: {exc}") from None
    return events
