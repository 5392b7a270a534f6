"""The standalone Flink cluster shipped in the apache-flink wheel, run from the project.

Configuration, logs and pid files live under one state directory (default
``.faro/flink``), so the wheel's own ``conf/`` is never modified and several
checkouts can run clusters side by side on different ports. Python workers
use this interpreter, so they see the same faro the client does.

    python -m faro._dev.flink_cluster up [--rest-port 8081]
    python -m faro._dev.flink_cluster submit jobs/flink_order_pipeline.py -- --sink stdout
    python -m faro._dev.flink_cluster down

In containers (docker-compose.yml), one process each, in the foreground:

    python -m faro._dev.flink_cluster jobmanager --advertise jobmanager
    python -m faro._dev.flink_cluster taskmanager --jobmanager jobmanager:6123 \
        --advertise taskmanager
    python -m faro._dev.flink_cluster submit --jobmanager jobmanager:8081 JOB.py -- ...
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any, NoReturn

import pyflink

from faro._dev.broker import free_port
from faro._dev.environment import child_environment

FLINK_HOME = Path(pyflink.__file__).resolve().parent
DEFAULT_STATE = Path(".faro/flink")

_JAVA_OPTS = " ".join(
    f"--add-opens=java.base/{p}=ALL-UNNAMED"
    for p in ("java.lang", "java.net", "java.io", "java.nio", "sun.nio.ch", "java.lang.reflect",
              "java.text", "java.time", "java.util", "java.util.concurrent",
              "java.util.concurrent.atomic", "java.util.concurrent.locks")
)  # fmt: skip


class FlinkCluster:
    def __init__(self, state_dir: Path = DEFAULT_STATE, rest_port: int | None = None):
        self.state_dir = state_dir.resolve()
        self.conf_dir = self.state_dir / "conf"
        self._rest_port = rest_port

    @property
    def rest_port(self) -> int:
        if self._rest_port is None:
            self._rest_port = int(json.loads((self.state_dir / "ports.json").read_text())["rest"])
        return self._rest_port

    @property
    def url(self) -> str:
        return f"http://localhost:{self.rest_port}"

    def _env(self) -> dict[str, str]:
        return child_environment(
            FLINK_CONF_DIR=str(self.conf_dir),
            FLINK_LOG_DIR=str(self.state_dir / "log"),
            FLINK_PID_DIR=str(self.state_dir / "pid"),
        )

    def _write_conf(self, settings: dict[str, Any], replace: bool = True) -> None:
        """The wheel's conf/ copied into the state dir, with ``settings`` on top of
        what every role shares. Built aside and renamed into place, so that clients
        submitting at the same time (the compose file's two jobs) never see it half
        written; with ``replace`` False, a conf already in place is kept."""
        building = self.state_dir / f".conf-{uuid.uuid4().hex}"
        shutil.copytree(FLINK_HOME / "conf", building)
        for d in ("log", "pid", "tmp"):
            (self.state_dir / d).mkdir(parents=True, exist_ok=True)
        settings = {
            "env.java.opts.all": _JAVA_OPTS,
            "jobmanager.memory.process.size": "1024m",
            "taskmanager.memory.process.size": "2048m",
            "taskmanager.numberOfTaskSlots": 4,
            "parallelism.default": 1,
            "io.tmp.dirs": str(self.state_dir / "tmp"),
            "python.executable": sys.executable,
            "python.client.executable": sys.executable,
            **settings,
        }
        lines = [f"{k}: {json.dumps(v) if isinstance(v, str) else v}" for k, v in settings.items()]
        (building / "config.yaml").write_text("\n".join(lines) + "\n")
        if replace:
            shutil.rmtree(self.conf_dir, ignore_errors=True)
        try:
            os.rename(building, self.conf_dir)
        except OSError:
            if (self.conf_dir / "config.yaml").exists():  # another client was first
                shutil.rmtree(building, ignore_errors=True)
            else:  # left half written by a crash
                shutil.rmtree(self.conf_dir, ignore_errors=True)
                os.rename(building, self.conf_dir)

    def _remember(self, ports: dict[str, int]) -> None:
        """Where ``submit`` and ``url`` find the cluster later."""
        (self.state_dir / "ports.json").write_text(json.dumps(ports))
        self._rest_port = ports["rest"]

    def up(self, timeout: float = 120) -> None:
        """Starts a JobManager and a TaskManager and waits until a slot is free."""
        ports = {"rest": self._rest_port or 8081, "rpc": free_port()}
        self._write_conf({
            **_jobmanager_conf("localhost", "localhost", ports["rpc"], ports["rest"]),
            **_taskmanager_conf("localhost", "localhost", ("localhost", ports["rpc"])),
        })  # fmt: skip
        self._remember(ports)
        (self.conf_dir / "masters").write_text(f"localhost:{ports['rest']}\n")
        (self.conf_dir / "workers").write_text("localhost\n")
        subprocess.run([str(FLINK_HOME / "bin/start-cluster.sh")], env=self._env(), check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/overview", timeout=2) as r:
                    if json.load(r).get("slots-available", 0) > 0:
                        return
            except OSError:
                pass
            time.sleep(0.5)
        raise RuntimeError(
            f"Flink did not come up on {self.url} within {timeout}s; see {self.state_dir / 'log'}"
        )

    def run_jobmanager(self, advertise: str, rpc_port: int) -> NoReturn:
        """A JobManager in the foreground, as a container's main process. It listens
        on every interface and gives TaskManagers and clients ``advertise``, the
        name they reach it by (a compose service's name)."""
        rest = self._rest_port or 8081
        self._write_conf(_jobmanager_conf("0.0.0.0", advertise, rpc_port, rest))
        self._remember({"rest": rest, "rpc": rpc_port})
        self._exec("jobmanager.sh")

    def run_taskmanager(self, jobmanager: tuple[str, int], advertise: str) -> NoReturn:
        """A TaskManager in the foreground that registers with the JobManager at
        ``jobmanager`` (its RPC address) and is reached back by ``advertise``."""
        self._write_conf(_taskmanager_conf("0.0.0.0", advertise, jobmanager))
        self._exec("taskmanager.sh")

    def _exec(self, script: str) -> NoReturn:
        """Becomes the script, which execs the JVM: signals reach Flink directly."""
        path = str(FLINK_HOME / "bin" / script)
        sys.stdout.flush()
        os.execve(path, [path, "start-foreground"], self._env())

    def down(self) -> None:
        if self.conf_dir.exists():
            subprocess.run([str(FLINK_HOME / "bin/stop-cluster.sh")], env=self._env(), check=False,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip

    def submit(
        self, job: Path, args: list[str], detached: bool = False, address: str | None = None
    ) -> int:
        """``flink run -py`` with this interpreter for client and workers, to the
        REST ``address`` given, else to the cluster this state dir describes."""
        address = address or f"localhost:{self.rest_port}"
        if not (self.conf_dir / "config.yaml").exists():
            self._write_conf({}, replace=False)  # a client of a cluster started elsewhere
        cmd = [str(FLINK_HOME / "bin/flink"), "run", "-m", address,
               "-py", str(job.resolve()),
               "-pyexec", sys.executable, "-pyclientexec", sys.executable]  # fmt: skip
        if detached:
            cmd.insert(2, "-d")
        return subprocess.run(cmd + args, env=self._env(), check=False).returncode


def _jobmanager_conf(bind: str, advertise: str, rpc_port: int, rest_port: int) -> dict[str, Any]:
    """A JobManager listening on ``bind`` and reached as ``advertise``."""
    return {
        "jobmanager.bind-host": bind,
        "jobmanager.rpc.address": advertise,
        "jobmanager.rpc.port": rpc_port,
        "rest.address": advertise,
        "rest.bind-address": bind,
        "rest.port": rest_port,
    }


def _taskmanager_conf(bind: str, advertise: str, jobmanager: tuple[str, int]) -> dict[str, Any]:
    """A TaskManager listening on ``bind``, reached as ``advertise``, that registers
    at the JobManager's RPC address ``jobmanager``."""
    return {
        "jobmanager.rpc.address": jobmanager[0],
        "jobmanager.rpc.port": jobmanager[1],
        "taskmanager.bind-host": bind,
        "taskmanager.host": advertise,
    }


def _host_port(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, e.g. jobmanager:6123, not {value!r}")
    return host, int(port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m faro._dev.flink_cluster",
        description="Run the apache-flink wheel's standalone cluster for this project: "
        "both processes on this machine (up/down), or one per container "
        "(jobmanager/taskmanager, as docker-compose.yml does).",
    )
    parser.add_argument(
        "--state-dir", type=Path, default=DEFAULT_STATE, help="default: .faro/flink"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start a JobManager and a TaskManager")
    up.add_argument(
        "--rest-port", type=int, default=8081, help="web UI and REST port (default: 8081)"
    )
    sub.add_parser("down", help="stop the cluster")
    jm = sub.add_parser("jobmanager", help="run a JobManager in the foreground (in a container)")
    jm.add_argument(
        "--advertise", required=True, help="the host name TaskManagers and clients reach it by"
    )
    jm.add_argument("--rest-port", type=int, default=8081, help="web UI and REST (default: 8081)")
    jm.add_argument("--rpc-port", type=int, default=6123, help="for TaskManagers (default: 6123)")
    tm = sub.add_parser("taskmanager", help="run a TaskManager in the foreground (in a container)")
    tm.add_argument(
        "--jobmanager", type=_host_port, required=True, help="the JobManager's HOST:RPC_PORT"
    )
    tm.add_argument("--advertise", required=True, help="the host name the JobManager reaches it by")
    submit = sub.add_parser("submit", help="submit a PyFlink job and wait for it to finish")
    submit.add_argument("job", type=Path)
    submit.add_argument("--detached", action="store_true", help="return once the job is submitted")
    submit.add_argument(
        "--jobmanager",
        type=_host_port,
        help="the cluster's REST HOST:PORT (default: the cluster `up` started with this state dir)",
    )
    submit.add_argument(
        "job_args", nargs=argparse.REMAINDER, help="after --: the job's own arguments"
    )
    args = parser.parse_args(argv)

    if args.command == "up":
        cluster = FlinkCluster(args.state_dir, args.rest_port)
        cluster.up()
        print(f"Flink is up: web UI {cluster.url}")
        return 0
    if args.command == "jobmanager":
        FlinkCluster(args.state_dir, args.rest_port).run_jobmanager(args.advertise, args.rpc_port)
    if args.command == "taskmanager":
        FlinkCluster(args.state_dir).run_taskmanager(args.jobmanager, args.advertise)
    cluster = FlinkCluster(args.state_dir)
    if args.command == "down":
        cluster.down()
        return 0
    job_args = [a for a in args.job_args if a != "--"]
    address = None if args.jobmanager is None else "{}:{}".format(*args.jobmanager)
    return cluster.submit(args.job, job_args, args.detached, address)


if __name__ == "__main__":
    sys.exit(main())
