"""The materializer against the real test broker: exactly once, even when killed."""

from __future__ import annotations

import contextlib
import logging
import random
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from confluent_kafka import Producer

from faro import KafkaCaptureEventSink
from faro._dev.broker import LocalBroker, free_port
from faro.store import layout, writer
from faro.store.materializer import Materializer
from tests.sinks.events import mixed_events
from tests.store.events import stored_rows
from tests.support import new_topic

pytestmark = pytest.mark.kafka
QUICK_GROUP = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 500}


def _produce(bootstrap: str, topic: str, n: int, prefix: str = "") -> list[str]:
    events = mixed_events(n)
    for e in events:
        e.event_id = f"{prefix}{e.event_id}"
    sink = KafkaCaptureEventSink(bootstrap, topic)
    for e in events:
        sink.emit(e)
    assert sink.flush(30)
    sink.close()
    return [e.event_id for e in events]


def _stored_count(data_dir: Path) -> int:
    total = 0
    for f in layout.event_files(data_dir):
        try:
            total += pq.ParquetFile(f).metadata.num_rows
        except FileNotFoundError:  # compacted or replaced meanwhile
            continue
    return total


def _counts(data_dir: Path) -> tuple[int, int]:
    files = [str(f) for f in layout.event_files(data_dir)]
    row = duckdb.execute(
        "SELECT count(*), count(DISTINCT event_id) FROM read_parquet(?, hive_partitioning=false)",
        [files],
    ).fetchone()
    assert row is not None
    return row[0], row[1]


def test_events_and_dead_letters_arrive_exactly_once(broker: LocalBroker, tmp_path: Path) -> None:
    topic = new_topic(broker.bootstrap_servers)
    ids = _produce(broker.bootstrap_servers, topic, 3000)
    producer = Producer({"bootstrap.servers": broker.bootstrap_servers})
    junk = [b"not avro", b"\xc3\x01" + b"\x00" * 8, b"", b"\xc3\x01" + b"\xff" * 30]
    for i, payload in enumerate(junk):
        producer.produce(topic, payload, key=f"junk-{i}", partition=i % 3)
    producer.flush(10)
    ids += _produce(broker.bootstrap_servers, topic, 2000, prefix="late-")

    materializer = Materializer(
        broker.bootstrap_servers, tmp_path, topic=topic, group=f"g-{topic}",
        batch_size=700, max_batch_seconds=0.5, consumer_config=QUICK_GROUP,
    )  # fmt: skip
    stats = materializer.run(idle_exit_s=10)

    assert _counts(tmp_path) == (len(ids), len(ids))
    assert sorted(r[0] for r in stored_rows(tmp_path, "event_id")) == sorted(ids)
    assert stats.events == len(ids) and stats.dead_letters == len(junk)
    dead = duckdb.execute(
        'SELECT key, value, reason, partition, "offset" FROM read_parquet(?)',
        [str(tmp_path / layout.DEAD_LETTERS / "*" / "*.parquet")],
    ).fetchall()
    assert sorted(bytes(d[1]) for d in dead) == sorted(junk)
    assert {bytes(d[0]).decode() for d in dead} == {f"junk-{i}" for i in range(len(junk))}
    assert all(d[2] for d in dead)


def test_a_stop_request_stores_the_batch_in_progress(broker: LocalBroker, tmp_path: Path) -> None:
    topic = new_topic(broker.bootstrap_servers)
    ids = _produce(broker.bootstrap_servers, topic, 1500)
    materializer = Materializer(
        broker.bootstrap_servers, tmp_path, topic=topic, group=f"g-{topic}",
        batch_size=1_000_000, max_batch_seconds=3600, consumer_config=QUICK_GROUP,
    )  # fmt: skip
    runner = threading.Thread(target=materializer.run)
    runner.start()
    deadline = time.monotonic() + 30
    while materializer.pending < len(ids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert materializer.stats.events == 0, "nothing is stored before the batch closes"
    materializer.stop()
    runner.join(30)
    assert not runner.is_alive()
    assert _counts(tmp_path) == (len(ids), len(ids))


def test_a_failed_write_stops_the_run_and_a_restart_stores_each_event_once(
    broker: LocalBroker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch is written while the next is consumed: a write that fails (here a
    full disk, injected at the fourth file) must still end the run with its error,
    and what it did not store must come back on restart."""
    topic = new_topic(broker.bootstrap_servers)
    ids = _produce(broker.bootstrap_servers, topic, 3000)
    real, files = writer.write_parquet, 0

    def disk_fills_up(table: pa.Table, path: Path) -> None:
        nonlocal files
        files += 1
        if files >= 4:
            raise OSError(28, "No space left on device")
        real(table, path)

    monkeypatch.setattr(writer, "write_parquet", disk_fills_up)
    config = {
        "topic": topic, "group": f"g-{topic}", "batch_size": 300,
        "max_batch_seconds": 0.5, "consumer_config": QUICK_GROUP,
    }  # fmt: skip
    with pytest.raises(OSError, match="No space left on device"):
        Materializer(broker.bootstrap_servers, tmp_path, **config).run(idle_exit_s=10)
    stored, distinct = _counts(tmp_path)
    assert 0 < stored == distinct < len(ids)

    monkeypatch.undo()
    stats = Materializer(broker.bootstrap_servers, tmp_path, **config).run(idle_exit_s=5)
    assert stats.events == len(ids) - stored
    assert _counts(tmp_path) == (len(ids), len(ids))
    assert sorted(r[0] for r in stored_rows(tmp_path, "event_id")) == sorted(ids)


def test_sigkill_at_random_points_neither_loses_nor_duplicates(
    broker: LocalBroker, tmp_path: Path
) -> None:
    with contextlib.ExitStack() as stack:
        _kill_and_restart(broker, tmp_path, stack)


def _kill_and_restart(broker: LocalBroker, tmp_path: Path, stack: contextlib.ExitStack) -> None:
    topic = new_topic(broker.bootstrap_servers)
    ids = _produce(broker.bootstrap_servers, topic, 40_000)
    command = [
        sys.executable, "-m", "faro.cli", "materialize",
        "--bootstrap-servers", broker.bootstrap_servers, "--topic", topic,
        "--group", f"g-{topic}", "--data-dir", str(tmp_path),
        "--batch-size", "400", "--max-batch-seconds", "0.2",
        "--consumer-config", "session.timeout.ms=6000",
        "--consumer-config", "heartbeat.interval.ms=500",
    ]  # fmt: skip
    log = stack.enter_context(open(tmp_path.parent / "materializer.log", "ab"))
    rng = random.Random(7)
    killed_mid_stream = 0
    for _ in range(4):
        before = _stored_count(tmp_path)
        proc = subprocess.Popen(command, stderr=log)
        deadline = time.monotonic() + 40
        while _stored_count(tmp_path) == before and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(rng.uniform(0, 0.8))
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        if 0 < _stored_count(tmp_path) < len(ids):
            killed_mid_stream += 1
    assert killed_mid_stream >= 3, "the kills should land while the stream is being stored"

    proc = subprocess.Popen(command, stderr=log)
    deadline = time.monotonic() + 90
    while _stored_count(tmp_path) < len(ids) and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1)  # a duplicate would show up as more rows
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    assert _counts(tmp_path) == (len(ids), len(ids))
    assert sorted(r[0] for r in stored_rows(tmp_path, "event_id")) == sorted(ids)


def test_the_materializer_process_keeps_pandas_out(tmp_path: Path) -> None:
    """pyarrow and DuckDB import pandas on first use when it is installed (~45 MB)."""
    script = f"""
import sys
from pathlib import Path
from faro.store.materializer import keep_pandas_out
keep_pandas_out()
from faro.core.avro_codec import encode_single_object
from faro.store.avro_batch import AvroBatchDecoder
from faro.store.writer import EventWriter
from tests.sinks.events import mixed_events
events = mixed_events(3_000)
data = Path({str(tmp_path)!r})
table = AvroBatchDecoder(data / "scratch").decode([encode_single_object(e) for e in events]).table
assert EventWriter(data, "test").write(table).rows == len(events)
print("pandas" in sys.modules)
try:
    import pandas
except ImportError as exc:
    print(exc)
"""
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    loaded, error = run.stdout.splitlines()
    assert loaded == "False"
    assert "keep_pandas_out" in error


_MMAP_PROBE = """
import ctypes, sys
from faro.store.materializer import fix_mmap_threshold

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
        "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
libc.mallinfo2.restype = MallInfo2
if sys.argv[1] == "fixed":
    assert fix_mmap_threshold()
libc.free(libc.malloc(4 << 20))  # a batch-sized buffer, mapped and freed
before = libc.mallinfo2().hblks
block = libc.malloc(1 << 20)  # the next batch's buffer: mapped (own pages) or from the heap?
print(libc.mallinfo2().hblks - before)
"""


def test_a_fixed_mmap_threshold_keeps_big_buffers_out_of_the_heap() -> None:
    """What fix_mmap_threshold is for: glibc's default raises the threshold when a
    mapped block is freed, so the next big buffer lands in the heap."""

    def mapped_blocks(mode: str) -> int:
        run = subprocess.run(
            [sys.executable, "-c", _MMAP_PROBE, mode], capture_output=True, text=True, check=True
        )
        return int(run.stdout)

    assert mapped_blocks("default") == 0
    assert mapped_blocks("fixed") == 1


def test_the_topic_defaults_to_the_kafka_sinks_topic(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FARO_KAFKA_TOPIC", "team-a.capture-events")
    assert Materializer("127.0.0.1:1", tmp_path).topic == "team-a.capture-events"
    assert Materializer("127.0.0.1:1", tmp_path, topic="other").topic == "other"


def test_an_unreachable_broker_is_logged_once_per_kind_not_per_retry(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    """librdkafka retries a refused connection many times a second, each time with
    a raw line on stderr; the materializer's log says it once, naming the brokers."""
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    with caplog.at_level(logging.DEBUG, logger="faro.materializer"):
        Materializer(address, tmp_path, topic="t", group="g", progress_interval_s=1).run(
            idle_exit_s=3
        )
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings and all(w.startswith(f"Kafka at {address}: ") for w in warnings)
    assert any("Connection refused" in w for w in warnings)
    assert len(warnings) == len(set(warnings)) <= 3  # one per kind of error within 30 s
    retries = [r for r in caplog.records if r.name == "faro.materializer.librdkafka"]
    assert len(retries) > len(warnings)  # the client's own lines, kept at DEBUG
    assert "%3|" not in capfd.readouterr().err
    progress = [r.getMessage() for r in caplog.records if "not yet stored" in r.getMessage()]
    unknown = "lag unknown (no partitions assigned yet)"
    assert progress and all(line.endswith(unknown) for line in progress)
    peaks = [float(re.search(r"peak memory (\d+) MB", line)[1]) for line in progress]
    # this process's own peak, as the kernel reports it
    kernel = int(re.search(r"VmHWM:\s+(\d+) kB", Path("/proc/self/status").read_text())[1])
    assert 0.8 * kernel / 1024 <= max(peaks) <= kernel / 1024 + 1
