"""A tiny store: one operator flushing once a minute, for as many minutes as asked."""

from __future__ import annotations

from pathlib import Path

from faro import CaptureEvent, EventType, OperatorType
from faro.store.columns import events_to_table
from faro.store.writer import EventWriter

MIN = 60_000
T0 = 1_795_000_000_000 - 1_795_000_000_000 % (24 * 3_600_000)
"""Midnight UTC of a fixed day."""


def flushes(data_dir: Path, minutes: range) -> None:
    events = [
        CaptureEvent(f"f{m}", EventType.AGGREGATE, "pay", "score", OperatorType.MAP,
                     T0 + m * MIN, input_count=50, output_count=50)
        for m in minutes
    ]  # fmt: skip
    EventWriter(data_dir, "flushes").write(events_to_table(events))
