"""A local job's process waits for faro's wrappers to close before it exits."""

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from faro._dev.environment import child_environment
from faro.flink.lifecycle import OpenWrappers
from tests.flink.jobs import read_events

pytestmark = pytest.mark.flink
ROOT = Path(__file__).resolve().parents[2]


def test_a_script_that_ends_with_execute_keeps_its_last_counts(tmp_path) -> None:
    """PyFlink closes a local job's functions in threads of the script's own process
    after execute() returned; the script's exit used to cut their last flush off
    (without the wait, none of the four closes, each taking DELIVERY_S, delivered)."""
    records = 400
    done = subprocess.run(
        [sys.executable, "-m", "tests.flink.exit_job", str(tmp_path), str(records)],
        cwd=ROOT, env=child_environment(PYTHONPATH=str(ROOT)),
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    events = read_events(tmp_path)
    counts = {
        op: (sum(e.input_count for e in events if e.operator_id == op),
             {e.subtask_index for e in events if e.operator_id == op})
        for op in ("first", "second")
    }  # fmt: skip
    assert counts == {"first": (records, {0, 1}), "second": (records, {0, 1})}


def test_waiting_ends_when_the_last_opened_wrapper_closes() -> None:
    tracked, wrappers = OpenWrappers(), [object(), object()]
    opening = threading.Thread(target=lambda: [tracked.opened(w) for w in wrappers])
    opening.start()
    opening.join()
    assert not tracked.wait(0.1)  # both still open
    threading.Timer(0.2, lambda: [tracked.closed(w) for w in wrappers]).start()
    assert tracked.wait(5)
    tracked.opened(object())  # from the main thread: not a PyFlink worker, not waited for
    assert tracked.wait(0.1)
