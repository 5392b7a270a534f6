"""`make demo` end to end at a small size: Flink jobs -> Kafka -> materializer -> API.

The API's answers are checked against what the jobs were told to produce, and
`down` must leave nothing running.
"""

import os
import re
import shlex
import subprocess
import sys
from urllib.parse import urlencode

import duckdb
import httpx
import pytest

from faro.core.json_codec import from_json
from faro.core.sampling import is_sampled
from faro.store import layout

pytestmark = [pytest.mark.flink, pytest.mark.kafka]
# Event times advance 1000 / RATE ms per record, and each user has every 200th
# record: at 1,000/s a user's records span 2.8 s or more, so they always fall in at
# least two of the demo's 2-second windows. At 1,500/s they spanned 1.87 s, and ~7 %
# of runs put them all in one window, failing the lineage check below.
RATE = 1000
# Late orders come a window and 5 s (7 s) behind, once the stream is that old:
# 9 s of event time leave 2 s of them.
RECORDS = 9000
WINDOW_MS = 2000


def _demo(*args: str, timeout: float = 400) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "faro._dev.demo", *args],
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_demo_runs_the_whole_path_and_stops_cleanly() -> None:
    from faro._dev.demo import JOBS, SAMPLE_RATE, STATE_DIR, TOPIC, USERS

    sys.path.insert(0, str(JOBS))
    from flink_order_pipeline import LATE_EVERY, MIN_AMOUNT, make_order

    up = _demo("up", "--records", str(RECORDS), "--rate", str(RATE), "--port", "0")
    try:
        assert up.returncode == 0, up.stdout[-2000:] + up.stderr[-3000:]
        state = (STATE_DIR / "state.json").read_text()
        pids = [int(p) for p in re.findall(r'"\w+": (\d+)', state)]
        assert len(pids) == 3 and all(_alive(p) for p in pids)
        api = re.search(r"API docs: (http://\S+)/docs", up.stdout).group(1)  # type: ignore[union-attr]

        # the order pipeline drops small orders, then sums the rest in windows
        valid = sum(make_order(i, 0)[1] >= MIN_AMOUNT for i in range(RECORDS))
        assert 0 < valid < RECORDS
        funnel = httpx.get(f"{api}/pipelines/order-pipeline/funnel?window=7d").json()
        stages = [(s["operator_id"], s["input_count"], s["output_count"]) for s in funnel["stages"]]
        assert stages[0] == ("valid-orders", RECORDS, valid)
        assert stages[1][:2] == ("order-agg-window", valid) and len(stages) == 2
        # every LATE_EVERY-th order comes late (once event time allows it), after its
        # window fired: late_trace counted those among the window's input
        late_ms = WINDOW_MS + 5000
        late = sum(
            i % LATE_EVERY == LATE_EVERY - 1 and i * 1000 // RATE >= late_ms
            and make_order(i, 0)[1] >= MIN_AMOUNT
            for i in range(RECORDS)
        )  # fmt: skip
        assert late > 0
        windows = httpx.get(f"{api}/pipelines/order-pipeline/windows?window=7d").json()
        [agg] = windows["operators"]
        assert agg["operator_id"] == "order-agg-window"
        assert agg["late_rate"] == pytest.approx(late / valid)
        assert agg["window_length_ms"] == WINDOW_MS and agg["missing_count"] == 0
        late_line = f"order-agg-window: {agg['windows']} windows fired"
        assert f"{late / valid:.1%} of its input late" in up.stdout.split(late_line)[1]
        parallel = httpx.get(f"{api}/pipelines/order-pipeline/subtasks?window=7d").json()
        subtasks = {o["operator_id"]: o for o in parallel["operators"]}
        for op, records in (("valid-orders", RECORDS), ("order-agg-window", valid)):
            assert sum(s["input_count"] for s in subtasks[op]["detail"]) == records
            assert subtasks[op]["stalled"] == []
            assert f"{op}: {subtasks[op]['subtasks']} subtask(s)" in up.stdout

        sampled = [f"user-{i}" for i in range(USERS) if is_sampled(f"user-{i}", SAMPLE_RATE)]
        summary = httpx.get(
            f"{api}/features/purchase_amount_7d/values/summary?"
            + urlencode({"pipeline_id": "user-feature-pipeline", "window": "1h"})
        ).json()
        assert summary["source"] == "ENTITY" and summary["count"] > 0
        lineage = httpx.get(f"{api}/entities/{sampled[0]}/lineage").json()
        assert {s["feature_name"] for s in lineage["steps"]} == {"purchase_amount_7d"}
        # each window result has its own event time (the window's last millisecond)
        # and so its own trace id
        times = [s["event_time"] for s in lineage["steps"]]
        assert None not in times and len(set(times)) == len(times) > 1
        assert len({s["trace_id"] for s in lineage["steps"]}) == len(times)
        unsampled = next(f"user-{i}" for i in range(USERS) if f"user-{i}" not in sampled)
        assert httpx.get(f"{api}/entities/{unsampled}/lineage").status_code == 404

        curls = re.findall(r"^curl '([^']+)'", up.stdout, re.M)
        assert len(curls) >= 3
        for url in curls:
            response = httpx.get(url)
            assert response.status_code == 200 and response.json()
        [tail] = re.findall(r"^(\S+/faro tail .+)$", up.stdout, re.M)
        shown = subprocess.run(shlex.split(tail), capture_output=True, text=True, timeout=60)
        assert shown.returncode == 0, shown.stderr
        events = [e for line in shown.stdout.splitlines() for e in from_json(line)]
        assert len(events) == 3
        assert {e.pipeline_id for e in events} <= {"order-pipeline", "user-feature-pipeline"}

        [status] = re.findall(r"^(\S+/faro status .+)$", up.stdout, re.M)
        said = subprocess.run(shlex.split(status), capture_output=True, text=True, timeout=60)
        assert said.returncode == 0, said.stderr
        files = [str(f) for f in layout.event_files(STATE_DIR / "data")]
        [[stored]] = duckdb.execute("SELECT count(*) FROM read_parquet(?)", [files]).fetchall()
        assert f"  {stored:,} events in {len(files):,} files" in said.stdout
        assert "dead letters: none" in said.stdout
        assert f"stored {TOPIC} partition 0 through offset" in said.stdout

        # the serving log it wrote: sampled users' current values, one of them also with a
        # value the pipeline had replaced, and one unsampled user
        [skew] = re.findall(r"^(\S+/faro skew .+)$", up.stdout, re.M)
        checked = subprocess.run(shlex.split(skew), capture_output=True, text=True, timeout=60)
        assert checked.returncode == 0, checked.stderr
        users = [line.split(",")[0] for line in
                 (STATE_DIR / "serving-log.csv").read_text().splitlines()[1:]]  # fmt: skip
        stale = len(users) - len(set(users))
        assert stale == 1 and users[-1] == unsampled
        summary = checked.stdout.splitlines()[1:9]
        counts = {line[:20].strip(): int(line[20:32].replace(",", "")) for line in summary}
        assert counts == {
            "rows": len(users), "compared": len(users) - 1, "matched": len(users) - 1 - stale,
            "mismatched": stale, "of them outdated": stale, "not captured": 1,
            "not sampled": 1, "missing": 0,
        }  # fmt: skip
        printed = checked.stdout.strip().splitlines()[1:]
        assert printed == up.stdout.split(skew)[1].splitlines()[1 : 1 + len(printed)]
        assert printed[-1].split()[-2:] == ["1", "1"]  # the hour of `at`: one mismatch, outdated
    finally:
        down = _demo("down", timeout=60)
    assert down.returncode == 0
    assert not any(_alive(p) for p in pids)
    assert not (STATE_DIR / "state.json").exists()
    # stopped before the broker: it stored its last batch and said so, with no
    # connection failures on the way out
    log = (STATE_DIR / "materializer.log").read_text()
    assert "stopped:" in log.splitlines()[-1] and "Connection refused" not in log, log[-2000:]
