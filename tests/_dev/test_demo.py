"""`make demo` at a small size: both jobs run, and the summary adds up."""

import re
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.flink, pytest.mark.kafka]


def test_demo_runs_both_jobs_and_reports_every_record() -> None:
    records = 3000
    result = subprocess.run(
        [sys.executable, "-m", "faro._dev.demo", "--records", str(records), "--rate", "1500"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rows = {
        m.group(1): (int(m.group(2).replace(",", "")), int(m.group(3).replace(",", "")))
        for m in re.finditer(
            r"^(\S+ / \S+)\s+\d+\s+([\d,]+)\s+[\d,]+\s+\S+\s+([\d,]+)", result.stdout, re.M
        )
    }
    assert rows["order-pipeline / order-agg-window"] == (records, 0)
    inputs, entity_events = rows["user-feature-pipeline / rolling-amount-window"]
    assert inputs == records and entity_events > 0
    assert "no ENTITY events (0 found)" in result.stdout
    assert "nothing is left running" in result.stdout
