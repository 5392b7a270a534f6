"""docker-compose.yml without Docker: the faro services' commands run here as written.

This machine has no Docker engine, so the file's containers never start in CI.
What can be wrong in the file is checked against the real components instead:
the materializer, the API, the Flink cluster and the example jobs submitted to
it run with the compose file's own arguments (only the service names, the
ports and the volumes are mapped onto this host), and the wiring between the
services agrees with itself, with the Dockerfile and with faro's defaults.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from faro._dev.broker import free_port
from faro.core.sampling import is_sampled
from faro.core.settings import settings
from tests.support import new_topic, tomllib, wait_for

ROOT = Path(__file__).resolve().parents[1]
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
FARO_SERVICES = [name for name, s in SERVICES.items() if s.get("image") == "faro:local"]
JOBS = ("order-pipeline", "user-features")
JOB_RECORDS = 3000
CONTAINER_ENV = dict(os.environ)
"""The environment as collection found it. PyFlink's in-process tests leave their
Python worker's variables in ``os.environ`` (``PYFLINK_GATEWAY_DISABLED`` among
them, which makes a job started by a child process refuse to start), and a
container starts without them."""


def _option(service: str, name: str) -> str:
    command = SERVICES[service]["command"]
    return str(command[command.index(name) + 1])


def _kafka_env() -> dict[str, str]:
    return {k: str(v) for k, v in SERVICES["kafka"]["environment"].items()}


def test_every_client_of_kafka_uses_an_advertised_listener_of_its_network():
    env = _kafka_env()
    advertised = dict(
        reversed(entry.split("://")) for entry in env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    )
    listening = {
        name: address.rsplit(":", 1)[1]
        for name, address in (entry.split("://") for entry in env["KAFKA_LISTENERS"].split(","))
    }
    internal = advertised["kafka:19092"]
    assert listening[internal] == "19092"
    assert listening[advertised["localhost:9092"]] == "9092"
    assert "9092:9092" in SERVICES["kafka"]["ports"]
    clients = [s for s in FARO_SERVICES if "--bootstrap-servers" in SERVICES[s]["command"]]
    assert set(clients) == {"materializer", *JOBS}
    for service in [*clients, "kafka-init"]:
        bootstrap = _option(service, "--bootstrap-server" + ("s" if service in clients else ""))
        assert bootstrap == "kafka:19092", service
    assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] == internal


def test_the_topic_created_is_the_one_faro_uses_by_default():
    # the materializer and the jobs pass no --topic: they take the default
    assert _option("kafka-init", "--topic") == settings().kafka_topic
    assert all("--topic" not in SERVICES[s]["command"] for s in FARO_SERVICES)
    assert int(_option("kafka-init", "--partitions")) >= 1


def test_the_api_reads_the_store_the_materializer_writes_and_is_published():
    materializer, api = SERVICES["materializer"], SERVICES["api"]
    assert _option("materializer", "--data-dir") == _option("api", "--data-dir") == "/data"
    assert materializer["volumes"] == api["volumes"] == ["faro-data:/data"]
    assert _option("api", "--host") == "0.0.0.0"  # reachable from outside its container
    port = _option("api", "--port")
    assert f"{port}:{port}" in api["ports"]


def test_the_topic_is_kept_in_a_volume_as_the_store_is():
    # a topic recreated from offset 0 beside a store that holds higher offsets would
    # be skipped up to them (the materializer warns, but the events are not stored)
    log_dir = _kafka_env()["KAFKA_LOG_DIRS"]
    mounts = dict(v.split(":") for v in SERVICES["kafka"]["volumes"])
    assert {v: m for m, v in mounts.items()}[log_dir] in COMPOSE["volumes"]
    assert "faro-data" in COMPOSE["volumes"]


def test_the_image_installs_extras_that_exist_and_copies_files_that_exist():
    dockerfile = (ROOT / "Dockerfile").read_text()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    installed = re.search(r"pip install .*'\.\[([a-z,]+)\]'", dockerfile)
    assert installed, "the Dockerfile no longer installs faro with extras"
    extras = set(installed.group(1).split(","))
    assert extras <= set(project["optional-dependencies"])
    assert {"kafka", "api", "flink"} <= extras  # materializer, API, the PyFlink jobs
    for line in re.findall(r"^COPY (.+) \S+$", dockerfile, re.M):
        for source in line.split():
            assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
    programs = {SERVICES[s]["command"][0] for s in FARO_SERVICES}
    assert programs == {"faro", "python"} and "faro" in project["scripts"]
    jobs = {str(a) for s in FARO_SERVICES for a in SERVICES[s]["command"] if str(a).endswith(".py")}
    assert len(jobs) == 2 and all((ROOT / job).is_file() for job in jobs)


def test_the_flink_services_find_each_other_and_the_demo_starts_them():
    advertised = _option("jobmanager", "--advertise")
    assert advertised == "jobmanager"  # its service name, which the network resolves
    assert _option("taskmanager", "--advertise") == "taskmanager"
    rpc, rest = _option("jobmanager", "--rpc-port"), _option("jobmanager", "--rest-port")
    assert _option("taskmanager", "--jobmanager") == f"{advertised}:{rpc}"
    assert f"{rest}:{rest}" in SERVICES["jobmanager"]["ports"]
    assert f"localhost:{rest}/" in " ".join(SERVICES["jobmanager"]["healthcheck"]["test"])
    cluster = set(SERVICES["jobmanager"]["profiles"]) & set(SERVICES["taskmanager"]["profiles"])
    for job in JOBS:
        assert _option(job, "--jobmanager") == f"{advertised}:{rest}"
        assert set(SERVICES[job]["profiles"]) <= cluster  # `--profile demo` starts the cluster


class _ThisHost:
    """The compose network mapped onto this host: service names to localhost, the
    containers' ports to free ones, each volume to a directory of the test."""

    def __init__(self, bootstrap: str, tmp_path: Path, env: dict[str, str]):
        self.tmp_path, self.env = tmp_path, env
        self.ports = {port: str(free_port()) for port in ("9000", "8081", "6123")}
        self.names = {
            "kafka:19092": bootstrap,
            "/data": str(tmp_path / "data"),
            **self.ports,
            **{f"jobmanager:{p}": f"localhost:{q}" for p, q in self.ports.items()},
        }

    def argv(self, service: str) -> list[str]:
        names = {**self.names, "/flink": str(self.tmp_path / service)}
        command = [str(a) for a in SERVICES[service]["command"]]
        # a service's own name, where it says how others reach it, is localhost here
        program, *args = (
            "localhost" if before == "--advertise" else names.get(a, a)
            for before, a in zip(["", *command[:-1]], command, strict=True)
        )
        head = str(Path(sys.executable).parent / "faro") if program == "faro" else sys.executable
        return [head, *args]

    def start(self, service: str, *extra: str) -> subprocess.Popen[bytes]:
        with open(self.tmp_path / f"{service}.log", "wb") as log:  # the child keeps a copy
            return subprocess.Popen(
                [*self.argv(service), *extra],
                env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def log(self, service: str) -> str:
        return (self.tmp_path / f"{service}.log").read_text(errors="replace")


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM, as `docker compose stop` sends it; SIGKILL after 20 s."""
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url).status_code == 200
    except httpx.TransportError:
        return False


@pytest.fixture
def this_host(broker, tmp_path) -> Iterator[_ThisHost]:
    """The store side of the compose file (materializer and API) running here, on
    a fresh topic and store."""
    topic = new_topic(broker.bootstrap_servers, int(_option("kafka-init", "--partitions")))
    # the services take the default topic: made unique here through its variable
    host = _ThisHost(
        broker.bootstrap_servers, tmp_path, {**CONTAINER_ENV, "FARO_KAFKA_TOPIC": topic}
    )
    procs = [host.start("materializer"), host.start("api")]
    try:
        api = f"http://127.0.0.1:{host.ports['9000']}"
        assert wait_for(lambda: _answers(f"{api}/pipelines"), timeout=30), host.log("api")
        yield host
    finally:
        _stop(procs)
    # Both shut down gracefully: the materializer stores its batch and exits 0;
    # uvicorn finishes, then re-raises the signal, so the API's status is -SIGTERM.
    materialized = host.log("materializer")
    assert procs[0].returncode == 0 and "stopped:" in materialized.splitlines()[-1], materialized
    assert "Finished server process" in host.log("api").splitlines()[-1]


def _slots(rest_port: str) -> int:
    try:
        return int(httpx.get(f"http://localhost:{rest_port}/overview").json()["slots-available"])
    except (httpx.TransportError, ValueError, KeyError):
        return 0


@pytest.mark.kafka
@pytest.mark.flink
def test_the_compose_commands_carry_the_jobs_events_to_the_api(this_host):
    host = this_host
    api = f"http://127.0.0.1:{host.ports['9000']}"
    sys.path.insert(0, str(ROOT / "jobs"))
    from flink_order_pipeline import MIN_AMOUNT, make_order

    cluster = [host.start("jobmanager"), host.start("taskmanager")]
    try:
        assert wait_for(lambda: _slots(host.ports["8081"]) > 0, timeout=120), (
            host.log("jobmanager")[-3000:] + host.log("taskmanager")[-3000:]
        )
        # the jobs' own --records (20,000) would take 20 s each here
        jobs = {name: host.start(name, "--records", str(JOB_RECORDS)) for name in JOBS}
        for name, job in jobs.items():
            assert job.wait(300) == 0, f"{name}: {host.log(name)[-3000:]}"
    finally:
        _stop(cluster)

    valid = sum(make_order(i, 0)[1] >= MIN_AMOUNT for i in range(JOB_RECORDS))
    expected = [("valid-orders", JOB_RECORDS, valid), ("order-agg-window", valid)]

    def stages() -> list[tuple[Any, ...]]:
        funnel = httpx.get(f"{api}/pipelines/order-pipeline/funnel?window=7d")
        if funnel.status_code != 200:
            return []
        found = [
            (s["operator_id"], s["input_count"], s["output_count"]) for s in funnel.json()["stages"]
        ]
        return [found[0], found[1][:2]] if len(found) == 2 else found

    assert wait_for(lambda: stages() == expected, timeout=60), stages()

    users = int(_option("user-features", "--users"))
    rate = float(_option("user-features", "--sample-rate"))
    sampled = next(f"user-{i}" for i in range(users) if is_sampled(f"user-{i}", rate))
    unsampled = next(f"user-{i}" for i in range(users) if not is_sampled(f"user-{i}", rate))
    assert wait_for(lambda: _answers(f"{api}/entities/{sampled}/lineage"), timeout=30)
    assert httpx.get(f"{api}/entities/{unsampled}/lineage").status_code == 404
