"""PyFlink's thread mode, where the functions run in an interpreter inside the JVM."""

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from faro._dev.environment import child_environment, thread_mode_pythonpath
from tests.flink.jobs import orders, panes_of, read_events
from tests.flink.thread_job import MIN_AMOUNT, ORDERS

pytestmark = pytest.mark.flink
ROOT = Path(__file__).resolve().parents[2]


def test_traced_operators_count_ground_truth_in_thread_mode(tmp_path) -> None:
    """PyFlink 2.x's thread mode cannot answer get_index_of_this_subtask(), which
    failed every traced job there; faro reads the index from the Java context. Nor
    can a keyed broadcast function's context give current_watermark() there; faro
    asks its timer service."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.flink.thread_job", str(tmp_path)],
        cwd=ROOT, env=child_environment(PYTHONPATH=thread_mode_pythonpath(str(ROOT))),
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    events = read_events(tmp_path)

    valid = [o for o in orders(ORDERS) if o.amount >= MIN_AMOUNT]
    panes = panes_of(valid)

    def totals(op: str) -> tuple[int, int, set[int]]:
        mine = [e for e in events if e.operator_id == op and e.event_type == "AGGREGATE"]
        return (sum(e.input_count for e in mine), sum(e.output_count for e in mine),
                {e.subtask_index for e in mine})  # fmt: skip

    assert totals("valid-orders") == (ORDERS, len(valid), {0, 1})
    assert totals("rules") == (len(valid), len(valid), {0, 1})  # rules are not inputs
    assert totals("pass") == (len(valid), len(valid), {0, 1})
    assert totals("revenue-window") == (len(valid), len(panes), {0, 1})
    entities = [e for e in events if e.event_type == "ENTITY"]
    assert Counter((e.entity_id, e.feature_value) for e in entities) == Counter(
        (o.user, o.amount) for o in valid
    )
    fires = [e for e in events if e.operator_id == "revenue-window"]
    assert Counter((e.window_start, e.input_count) for e in fires) == Counter(
        (start, len(pane)) for (_, start), pane in panes.items()
    )
    outputs = json.loads((tmp_path / "outputs.json").read_text())
    assert sorted(map(tuple, outputs)) == sorted(
        (m, start, len(pane), round(sum(o.amount for o in pane), 6))
        for (m, start), pane in panes.items()
    )
