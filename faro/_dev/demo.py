"""`make demo` and `make demo-stop`: the whole path, Flink to the API, on this machine.

``up`` starts a local Kafka-protocol broker (tansu), the materializer and the
query API (all three left running, in their own sessions), runs the order
pipeline (AGGREGATE mode) and the user feature pipeline (ENTITY mode) on local
PyFlink mini-clusters with the async Kafka sink, waits until the API answers
from what the materializer stored, and prints the URLs, a summary, and curl
commands, a ``faro tail`` and a ``faro skew`` command it has checked return
data. ``down`` stops what ``up`` started.
State lives in ``.faro/demo/`` (pids, logs, the Parquet store).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from faro._dev.broker import LocalBroker, free_port
from faro._dev.environment import child_environment
from faro.core.sampling import is_sampled
from faro.store.journal import Journal
from faro.store.status import describe, kafka_lag, store_status
from faro.tail import Tail

TOPIC = "faro.capture-events"
PARTITIONS = 4
ROOT = Path(__file__).resolve().parents[2]
JOBS = ROOT / "jobs"
STATE_DIR = ROOT / ".faro" / "demo"
USERS = 200
SAMPLE_RATE = 0.1


def _run_jobs(bootstrap: str, records: int, rate: float) -> None:
    common = [
        *("--records", str(records), "--rate", str(rate), "--window-seconds", "2"),
        *("--sink", "async-kafka", "--bootstrap-servers", bootstrap, "--topic", TOPIC),
    ]
    user_options = ["--users", str(USERS), "--sample-rate", str(SAMPLE_RATE)]
    jobs = {
        "order pipeline": [sys.executable, str(JOBS / "flink_order_pipeline.py"), *common],
        "user feature pipeline": [
            sys.executable,
            str(JOBS / "flink_user_features.py"),
            *common,
            *user_options,
        ],
    }
    # the jobs are processes of their own, even when started from one that ran a
    # local job's workers (a test session)
    env = child_environment()
    procs = {}
    for name, cmd in jobs.items():
        print(f"  starting the {name}: {records:,} records at {rate:,.0f}/s", flush=True)
        log = STATE_DIR / f"{name.replace(' ', '-')}.log"  # what faro logs in the job too
        with log.open("wb") as out:
            job = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
            procs[name] = (job, log)
    for name, (proc, log) in procs.items():
        if proc.wait() != 0:
            tail = log.read_text(errors="replace").strip().splitlines()[-15:]
            raise SystemExit(f"the {name} failed (exit {proc.returncode}), {log}:\n"
                             + "\n".join(tail))  # fmt: skip
        print(f"  the {name} finished (its log: {log})", flush=True)


def _detached(cmd: list[str], log: Path) -> subprocess.Popen[bytes]:
    out = open(log, "ab")
    return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _save(state: dict[str, object]) -> None:
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    (STATE_DIR / "state.json").write_text(json.dumps(state, indent=2))


def _wait_until(what: str, ready: Callable[[], object], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if ready():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{what} did not happen within {timeout:.0f} s; see {STATE_DIR}/*.log")


def _get(url: str) -> Any:
    response = httpx.get(url, timeout=10)
    response.raise_for_status()
    return response.json()


def up(records: int, rate: float, port: int) -> int:
    down(quiet=True)
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    data_dir = STATE_DIR / "data"
    # The broker is new and in memory, so offsets restart at 0: a store kept from
    # an earlier demo would make the materializer skip what it thinks it has.
    shutil.rmtree(data_dir, ignore_errors=True)
    for log in STATE_DIR.glob("*.log"):
        log.unlink()
    pids: dict[str, int] = {}
    state: dict[str, object] = {"pids": pids, "data_dir": str(data_dir)}
    try:
        print("faro demo: starting a local Kafka-protocol broker (tansu)", flush=True)
        broker = LocalBroker(log_path=STATE_DIR / "broker.log", detached=True).start()
        pids["broker"] = broker.pid or 0
        bootstrap = broker.bootstrap_servers
        state["bootstrap_servers"] = bootstrap
        _save(state)
        admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 3})
        admin.create_topics([NewTopic(TOPIC, num_partitions=PARTITIONS, replication_factor=1)])[
            TOPIC
        ].result(10)
        print(f"  broker at {bootstrap}, topic {TOPIC}", flush=True)

        faro = [sys.executable, "-m", "faro.cli"]
        pids["materializer"] = _detached(
            [*faro, "materialize", "--bootstrap-servers", bootstrap, "--topic", TOPIC,
             "--data-dir", str(data_dir), "--max-batch-seconds", "1"],
            STATE_DIR / "materializer.log",
        ).pid  # fmt: skip
        print(f"  materializer: {TOPIC} -> {data_dir}", flush=True)
        port = port or free_port()
        api = f"http://127.0.0.1:{port}"
        pids["api"] = _detached(
            [*faro, "serve", "--data-dir", str(data_dir), "--port", str(port)],
            STATE_DIR / "api.log",
        ).pid
        state["api"] = api
        _save(state)
        _wait_until("the API starting", lambda: _get(f"{api}/healthz"), 30)
        print(f"  API at {api}", flush=True)

        _run_jobs(bootstrap, records, rate)
        print("  waiting for the materializer to store what the jobs captured", flush=True)
        topic = Consumer({"bootstrap.servers": bootstrap, "group.id": "faro-demo"})
        try:
            _wait_until(
                "the materializer storing every captured event",
                lambda: _caught_up(topic, data_dir),
                120,
            )
        finally:
            topic.close()
        _wait_until("the captured events reaching the API", lambda: _stored(api, records), 30)
        _report(api, bootstrap, data_dir)
    except BaseException:
        down(quiet=True)
        raise
    return 0


PIPELINES = ("order-pipeline", "user-feature-pipeline")


def _stages(api: str, pipeline: str) -> list[dict[str, Any]]:
    """The pipeline's operators as a funnel over the demo's run (the last 7 days)."""
    stages: list[dict[str, Any]] = _get(f"{api}/pipelines/{pipeline}/funnel?window=7d")["stages"]
    return stages


def _caught_up(topic: Any, data_dir: Path) -> bool:
    """The store holds every message on the topic (the jobs have ended, so their
    sinks have flushed): the ENTITY events too, which the funnels do not count."""
    stored = Journal(data_dir, "demo").offsets().get(TOPIC, {})
    for partition in range(PARTITIONS):
        try:
            _, high = topic.get_watermark_offsets(TopicPartition(TOPIC, partition), timeout=5)
        except KafkaException:  # the broker did not answer in time: ask again
            return False
        if stored.get(str(partition), -1) < high - 1:
            return False
    return True


def _stored(api: str, records: int) -> bool:
    """Every record reached each pipeline's first stage, and every stage after it
    got all that the one before passed on: nothing captured is still on its way."""
    known = [p["pipeline_id"] for p in _get(f"{api}/pipelines")]
    if set(PIPELINES) - set(known):
        return False
    for pipeline in PIPELINES:
        stages = _stages(api, pipeline)
        if not stages or stages[0]["input_count"] < records:
            return False
        if any(s["handoff_rate"] != 1.0 for s in stages[1:]):
            return False
    return True


def _sampled_users() -> list[str]:
    """The demo's users the user feature pipeline captures, in id order."""
    return [f"user-{i}" for i in range(USERS) if is_sampled(f"user-{i}", SAMPLE_RATE)]


def _report(api: str, bootstrap: str, data_dir: Path) -> None:
    print("\nwhat faro captured, as the API reports it (window 7d):\n")
    row = "{:<24}{:<26}{:>10}{:>10}{:>9}{:>10}"
    print(row.format("pipeline", "operator", "in", "out", "ratio", "late"))
    for pipeline in PIPELINES:
        ops = _get(f"{api}/pipelines/{pipeline}/operators?window=7d")["operators"]
        flow = [s["operator_id"] for s in _stages(api, pipeline)]  # upstream first
        for o in sorted(ops, key=lambda o: flow.index(o["operator_id"])):
            minutes = 7 * 24 * 60
            ratio = "-" if o["filter_ratio"] is None else f"{o['filter_ratio']:.3f}"
            late = "-" if o["late_rate"] is None else f"{o['late_rate']:.3f}"
            print(row.format(pipeline, o["operator_id"], f"{o['input_per_minute'] * minutes:,.0f}",
                             f"{o['output_per_minute'] * minutes:,.0f}", ratio, late))  # fmt: skip
    user = _sampled_users()[0]
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    checks = {
        "pipeline health": f"{api}/pipelines/order-pipeline/health",
        f"what {user} had": f"{api}/features/purchase_amount_7d/values?"
        + urlencode({"pipeline_id": "user-feature-pipeline", "entity_id": user, "window": "1h"}),
        "value summary": f"{api}/features/purchase_amount_7d/values/summary?"
        + urlencode({"pipeline_id": "user-feature-pipeline", "window": "1h"}),
        f"every feature of {user} at {now}": f"{api}/entities/{user}/as-of?"
        + urlencode({"at": now}),
        f"lineage of {user}": f"{api}/entities/{user}/lineage",
        "user window fires": f"{api}/pipelines/user-feature-pipeline/windows?window=1h",
        "order window fires": f"{api}/pipelines/order-pipeline/windows?window=1h",
        "order funnel": f"{api}/pipelines/order-pipeline/funnel?window=1h",
        "order subtasks": f"{api}/pipelines/order-pipeline/subtasks?window=1h",
    }
    print()
    for label, url in checks.items():
        body = _get(url)
        assert body, f"{url} answered nothing"
        print(f"# {label}\ncurl '{url}'\n")
    _print_tail(bootstrap)
    _print_status(bootstrap, data_dir)
    _print_skew(api)
    summary = _get(checks["value summary"])
    print(
        f"purchase_amount_7d over the last hour: {summary['count']:,} sampled values, "
        f"mean {summary['mean']:.2f}, p95 {summary['p95']:.2f}"
    )
    windowed = [_get(checks[f"{p} window fires"])["operators"] for p in ("order", "user")]
    for o in windowed[0] + windowed[1]:
        late = ""
        if o["late_rate"] is not None:
            late = f", {o['late_rate']:.1%} of its input late (after its window fired)"
        print(
            f"{o['operator_id']}: {o['windows']} windows fired, 95 % of fires within "
            f"{o['fire_delay']['p95_seconds']:.1f} s of their window's end, "
            f"{o['missing_count']} windows never fired{late}"
        )
    stages = _get(checks["order funnel"])["stages"]
    print("order-pipeline funnel: " + " -> ".join(
        f"{s['operator_id']} {s['input_count']:,} in, {s['output_count']:,} out" for s in stages
    ))  # fmt: skip
    for o in _get(checks["order subtasks"])["operators"]:
        behind = ", ".join(map(str, o["stalled"])) or "none"
        share = max(s["input_share"] or 0 for s in o["detail"])
        print(
            f"{o['operator_id']}: {o['subtasks']} subtask(s), the busiest took "
            f"{share:.0%} of the input, behind the others: {behind}"
        )
    print(f"\nweb page: {api}/ui    API docs: {api}/docs    metrics: {api}/metrics")
    print(f"{user} on the web page: {api}/ui?entity={user}")
    print("everything keeps running; `make demo-stop` stops the broker, materializer and API")


def _print_tail(bootstrap: str) -> None:
    """The command that shows the topic's raw events, once it has shown some here."""
    shown = Tail(bootstrap, TOPIC, from_beginning=True).run(
        io.StringIO(), sys.stderr, max_events=3, idle_exit_s=10
    )
    assert shown.shown == 3, f"faro tail found {shown.shown} events on {TOPIC}"
    faro = Path(sys.executable).parent / "faro"
    print(
        "# the events on the topic, as JSON lines (without --max-events: what arrives)\n"
        f"{faro} tail --bootstrap-servers {bootstrap} --from-beginning --max-events 3\n"
    )


def _print_status(bootstrap: str, data_dir: Path) -> None:
    """The command that says what the store holds and how far it has got, and its answer."""
    status = store_status(data_dir)
    faro = Path(sys.executable).parent / "faro"
    print(
        "# what the store holds, and what on the broker it does not have yet\n"
        f"{faro} status --data-dir {data_dir} --bootstrap-servers {bootstrap}\n"
        + describe(status, kafka_lag(bootstrap, [TOPIC], status.progress), int(time.time() * 1000))
        + "\n"
    )


def _print_skew(api: str) -> None:
    """``faro skew`` on a serving log written here, as a model reading from a store
    that lags the pipeline would have logged it: the sampled users' current values,
    one user's value from before the pipeline replaced it, and an unsampled user."""
    from faro.serving_log import Columns, run

    pipeline, feature = "user-feature-pipeline", "purchase_amount_7d"
    now = int(time.time() * 1000)
    sampled = _sampled_users()
    rows, stale = [], False
    for user in sampled[:5]:
        query = {"pipeline_id": pipeline, "entity_id": user}
        found = _get(f"{api}/features/{feature}/values/as-of?" + urlencode({**query, "at": now}))
        if not found["values"]:
            continue
        current = max(found["values"], key=lambda v: (v["processing_time"], v["operator_id"]))
        rows.append((user, now, current["value"]))
        history = _get(f"{api}/features/{feature}/values?" + urlencode({**query, "window": "1h"}))
        replaced = [
            v["value"] for v in history["values"]
            if v["processing_time"] < current["processing_time"] and v["value"] != current["value"]
        ]  # fmt: skip
        if replaced and not stale:
            rows.append((user, now, replaced[-1]))
            stale = True
    unsampled = next(f"user-{i}" for i in range(USERS) if f"user-{i}" not in sampled)
    rows.append((unsampled, now, 0.0))
    log = STATE_DIR / "serving-log.csv"
    log.write_text(f"entity_id,at,{feature}\n" + "".join(f"{u},{t},{v!r}\n" for u, t, v in rows))
    columns = Columns("entity_id", "at", {feature: feature})
    options = {"pipeline_id": pipeline}  # the API's defaults, as the printed command has them
    [totals] = run(log, api, options, columns, None, progress=io.StringIO()).values()
    faro = Path(sys.executable).parent / "faro"
    print(
        "# a model's serving log (written here: what a store lagging the pipeline would have "
        "served),\n# checked against what the pipeline held when the model read it\n"
        f"{faro} skew {log} --feature {feature} --pipeline {pipeline} --api {api}"
    )
    print(totals.summary() + "\n")


def down(quiet: bool = False) -> int:
    path = STATE_DIR / "state.json"
    if not path.exists():
        if not quiet:
            print("faro demo: nothing to stop")
        return 0
    pids: dict[str, int] = json.loads(path.read_text()).get("pids", {})
    # Last started, first stopped: the materializer stores its batch and leaves its
    # consumer group while the broker still answers.
    for name, pid in reversed(pids.items()):
        if _stop(pid) and not quiet:
            print(f"  stopped the {name} (pid {pid})")
    path.unlink()
    if not quiet:
        print(f"faro demo: stopped; the store stays in {STATE_DIR / 'data'}")
    return 0


def _stop(pid: int) -> bool:
    """SIGTERM to the process group (graceful: the materializer stores its batch), then SIGKILL."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    os.killpg(pid, signal.SIGKILL)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m faro._dev.demo", description=__doc__.split("\n\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("up", help="start everything, run the jobs, print where to look")
    start.add_argument(
        "--records", type=int, default=20_000, help="records per job (default: 20000)"
    )
    start.add_argument(
        "--rate", type=float, default=2_000, help="records/s per job (default: 2000)"
    )
    start.add_argument(
        "--port", type=int, default=9000, help="API port; 0 picks a free one (default: 9000)"
    )
    sub.add_parser("down", help="stop what `up` started")
    args = parser.parse_args(argv)
    if args.command == "down":
        return down()
    return up(args.records, args.rate, args.port)


if __name__ == "__main__":
    sys.exit(main())
