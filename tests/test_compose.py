"""docker-compose.yml without Docker: the faro services' commands run here as written.

This machine has no Docker engine, so the file's containers never start in CI.
What can be wrong in the file is checked against the real components instead:
the materializer, the API and the example jobs run with the compose file's own
arguments (only the broker address, the data volume and the published port are
mapped onto this host), and the wiring between the services agrees with itself,
with the Dockerfile and with faro's defaults.
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
import tomllib
import yaml

from faro._dev.broker import free_port
from faro.core.sampling import is_sampled
from faro.core.settings import settings
from tests.support import new_topic, wait_for

ROOT = Path(__file__).resolve().parents[1]
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
FARO_SERVICES = [name for name, s in SERVICES.items() if s.get("image") == "faro:local"]
JOB_RECORDS = 3000  # the jobs' own --records (20,000) would take 20 s each here
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
    assert set(clients) == {"materializer", "order-pipeline", "user-features"}
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
    jobs = {
        SERVICES[s]["command"][1] for s in FARO_SERVICES if SERVICES[s]["command"][0] == "python"
    }
    assert all((ROOT / job).is_file() for job in jobs)


def _on_this_host(service: str, bootstrap: str, data_dir: Path, port: int) -> list[str]:
    """The service's command with the container's names mapped onto this host."""
    mapped = {"kafka:19092": bootstrap, "/data": str(data_dir)}
    if service == "api":
        mapped[_option("api", "--port")] = str(port)
    program, *args = (mapped.get(str(a), str(a)) for a in SERVICES[service]["command"])
    head = [str(Path(sys.executable).parent / "faro")] if program == "faro" else [sys.executable]
    return [*head, *args]


@pytest.fixture
def store_side(broker, tmp_path) -> Iterator[tuple[str, dict[str, str]]]:
    """The materializer and the API of the compose file, on a fresh topic and store."""
    topic = new_topic(broker.bootstrap_servers, int(_option("kafka-init", "--partitions")))
    env = {**CONTAINER_ENV, "FARO_KAFKA_TOPIC": topic}  # the services' default topic, made unique
    port = free_port()
    procs = []
    for name in ("materializer", "api"):
        with open(tmp_path / f"{name}.log", "wb") as log:  # the child keeps its own copy
            argv = _on_this_host(name, broker.bootstrap_servers, tmp_path / "data", port)
            procs.append(
                subprocess.Popen(argv, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
            )
    api = f"http://127.0.0.1:{port}"
    try:
        assert wait_for(lambda: _answers(f"{api}/pipelines"), timeout=30), (
            tmp_path / "api.log"
        ).read_text()
        yield api, env
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
    # both shut down gracefully on SIGTERM, as `docker compose stop` sends it: the
    # materializer stores its batch and exits 0; uvicorn finishes, then re-raises the
    # signal, so the API's status is -SIGTERM by design
    materialized = (tmp_path / "materializer.log").read_text()
    assert procs[0].returncode == 0 and "stopped:" in materialized.splitlines()[-1], materialized
    assert "Finished server process" in (tmp_path / "api.log").read_text().splitlines()[-1]


def _answers(url: str) -> bool:
    try:
        return httpx.get(url).status_code == 200
    except httpx.TransportError:
        return False


@pytest.mark.kafka
@pytest.mark.flink
def test_the_compose_commands_carry_the_jobs_events_to_the_api(broker, store_side, tmp_path):
    api, env = store_side
    sys.path.insert(0, str(ROOT / "jobs"))
    from flink_order_pipeline import MIN_AMOUNT, make_order

    jobs = {
        name: subprocess.Popen(
            [
                *_on_this_host(name, broker.bootstrap_servers, tmp_path, 0),
                "--records",
                str(JOB_RECORDS),
            ],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for name in ("order-pipeline", "user-features")
    }
    for name, job in jobs.items():
        _, err = job.communicate(timeout=300)
        assert job.returncode == 0, f"{name}: {err.decode()[-3000:]}"

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

    users, rate = (
        int(_option("user-features", "--users")),
        float(_option("user-features", "--sample-rate")),
    )
    sampled = next(f"user-{i}" for i in range(users) if is_sampled(f"user-{i}", rate))
    unsampled = next(f"user-{i}" for i in range(users) if not is_sampled(f"user-{i}", rate))
    assert wait_for(lambda: _answers(f"{api}/entities/{sampled}/lineage"), timeout=30)
    assert httpx.get(f"{api}/entities/{unsampled}/lineage").status_code == 404
