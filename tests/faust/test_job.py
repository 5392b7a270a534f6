"""jobs/faust_purchase_pipeline.py end to end: it feeds itself, stops by itself, and
the sensor's events (stdout sink) match what the job generated."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from faro import CaptureEvent, EventType
from faro.core.json_codec import from_json

pytestmark = [pytest.mark.faust, pytest.mark.kafka]
JOB = Path(__file__).resolve().parents[2] / "jobs" / "faust_purchase_pipeline.py"


def _job_module():
    spec = importlib.util.spec_from_file_location("faust_purchase_pipeline", JOB)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_purchase_job_reports_each_users_weekly_total_as_it_was_written(broker) -> None:
    records, users = 400, 15
    done = subprocess.run(
        [sys.executable, str(JOB), "--broker", broker.bootstrap_servers, "--records",
         str(records), "--users", str(users), "--sample-rate", "1.0", "--sink", "stdout"],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"processed {records} purchases; stopping" in done.stdout
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    events: list[CaptureEvent] = [e for line in lines for e in from_json(line)]

    job = _job_module()
    week_ms = job.WEEK_S * 1000
    totals: dict[tuple[str, int], float] = defaultdict(float)
    written = []
    for i in range(records):
        p, ts = job.purchase(i, users), (job.START_S + 3600 * i) * 1000
        window = ts - ts % week_ms
        totals[(p["user_id"], window)] += p["amount"]
        written.append((p["user_id"], round(totals[(p["user_id"], window)], 6), ts))

    inputs: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for e in events:
        if e.event_type == EventType.AGGREGATE:
            inputs[e.operator_id][0] += e.input_count
            inputs[e.operator_id][1] += e.output_count
    assert dict(inputs) == {"rolling-amount": [records, records],
                            "purchase_amount_7d": [records, records]}  # fmt: skip
    entities = [e for e in events if e.event_type == EventType.ENTITY]
    assert sorted((e.entity_id, round(e.feature_value, 6), e.event_time) for e in entities) == \
        sorted(written)  # fmt: skip
    assert len({w for _, w in totals}) > 1  # the purchases span more than one week
