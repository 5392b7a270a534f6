"""jobs/spark_order_pipeline.py end to end: rate source, Delta sink, clean stop."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.spark.test_tracer import read_delta

pytestmark = pytest.mark.spark
JOB = Path(__file__).resolve().parents[2] / "jobs" / "spark_order_pipeline.py"


def test_the_order_job_reports_every_order_once_into_delta(tmp_path):
    table = tmp_path / "capture-events"
    done = subprocess.run(
        [sys.executable, str(JOB), "--sink", "delta", "--path", str(table), "--seconds", "10",
         "--rows-per-second", "100", "--trigger-seconds", "1"],
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "stopped after batch" in done.stderr
    events = read_delta(table)
    assert events and all(e["event_type"] == "AGGREGATE" for e in events)
    batches = sorted(e["batch_id"] for e in events)
    assert batches == list(range(batches[0], batches[0] + len(batches)))  # none lost or twice
    # every order is in exactly one merchant window: inputs == sum of order_count
    for e in events:
        stats = {s["name"]: s for s in e["feature_stats"]}
        counted = stats["order_count"]["sum"] if e["output_count"] else 0
        assert e["input_count"] == counted
    assert sum(e["input_count"] for e in events) > 0
