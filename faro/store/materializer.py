"""The consumer that turns the Kafka topic of CaptureEvents into the Parquet store.

Exactly once into files: a batch is decoded, written to staging, fsynced and
moved into place as one journaled change that also records the batch's last
offset per partition in the store itself; only then are offsets committed to
Kafka (asynchronously). On (re)assignment each partition resumes after the
offset the store holds, so a crash between the rename and the commit neither
loses nor duplicates an event, and the commit only serves lag monitoring and
tools.
Messages that do not decode go to ``dead_letters/`` with their raw bytes,
offset and reason, in the same change.

A batch is written on a thread of its own while the next one is consumed and
decoded: Arrow's Parquet writer, zstd and fsync release the GIL, so the write
mostly costs no time on the consuming thread. At most one batch is being
written at a time, in order, and a (re)assignment waits for it before reading
the store's offsets. Because batches overlap, the process fixes glibc's mmap
threshold (:func:`fix_mmap_threshold`) to keep its memory flat.

One materializer per data directory (a lock file enforces it).
"""

from __future__ import annotations

import ctypes
import logging
import resource
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from faro.core.failures import KafkaClientLog
from faro.core.settings import settings
from faro.store import defaults, layout
from faro.store.avro_batch import AvroBatchDecoder
from faro.store.journal import hold_lock
from faro.store.writer import (
    DEAD_LETTER_SCHEMA,
    KAFKA_PARTITION,
    EventWriter,
    KafkaSource,
    WriteSummary,
)

log = logging.getLogger("faro.materializer")


def _on_commit(err: Any, partitions: list[Any]) -> None:
    if err is not None:
        log.warning("offset commit failed (the store's offsets still apply): %s", err)


CONSUMER_DEFAULTS: dict[str, Any] = {
    "enable.auto.commit": False,
    "auto.offset.reset": "earliest",
    # A materializer group has one member; a short session lets it rejoin
    # quickly after a restart (some brokers wait half of it for members).
    "session.timeout.ms": 10_000,
    "heartbeat.interval.ms": 1_000,
    # Prefetch is bounded so that memory stays flat whatever the backlog. The
    # bounds count compressed bytes, and lz4 (the Kafka sink's default) packs an
    # event into ~60 bytes instead of ~215: with 16 MB queued and librdkafka's
    # default fetches (up to 50 MB, 1 MB per partition), peak RSS rose from ~290
    # to ~355 MB at 1 M events. With 4 MB queued and fetches of 1 MB (256 KB per
    # partition) the materializer peaks at 256-267 MB on lz4 input, at the same rate.
    "queued.max.messages.kbytes": 4_096,
    "fetch.max.bytes": 1_048_576,
    "max.partition.fetch.bytes": 262_144,
    # Once that bound is reached, librdkafka waits this long before fetching a
    # partition again (default 1,000 ms). A batch drains the prefetch long
    # before then, so with the default consuming stalled while each batch was
    # decoded: 122k events/s consume-and-decode, 284k with 10 ms.
    "fetch.queue.backoff.ms": 10,
    "on_commit": _on_commit,
}


@dataclass
class MaterializerStats:
    events: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    batches: int = 0
    files: int = 0
    busy_seconds: float = 0.0  # from the first message of the run to the last batch stored

    def rate(self) -> float:
        """Events stored per second while there was work (group joins and idling excluded)."""
        return self.events / self.busy_seconds if self.busy_seconds else 0.0


class Materializer:
    """Consumes until :meth:`stop` is called (or ``idle_exit_s`` passes with no message).

    ``topic`` defaults to ``FARO_KAFKA_TOPIC``, the Kafka sink's topic.
    ``consumer_config`` is merged into the librdkafka configuration, so SASL,
    TLS or any other client setting of the user's Kafka can be passed through.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        data_dir: Path | str,
        topic: str | None = None,
        group: str = defaults.GROUP,
        batch_size: int = defaults.BATCH_SIZE,
        max_batch_seconds: float = defaults.MAX_BATCH_SECONDS,
        progress_interval_s: float = defaults.PROGRESS_INTERVAL_S,
        consumer_config: dict[str, Any] | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if max_batch_seconds <= 0:
            raise ValueError(f"max_batch_seconds must be positive, got {max_batch_seconds}")
        self.data_dir = Path(data_dir)
        self.topic = topic or settings().kafka_topic
        self.batch_size = batch_size
        self.max_batch_seconds = max_batch_seconds
        self.progress_interval_s = progress_interval_s
        self.stats = MaterializerStats()
        client_log = KafkaClientLog(bootstrap_servers, log)
        self._config = {
            "bootstrap.servers": bootstrap_servers,
            "group.id": group,
            "error_cb": client_log.error,
            "logger": client_log,
            **CONSUMER_DEFAULTS,
            **(consumer_config or {}),
        }
        # events consumed not yet stored: the open batch and the one being written
        self.pending = 0
        self._stop = threading.Event()
        self._consumer: Any = None
        self._writer: EventWriter | None = None
        self._writing: Future[_Written] | None = None

    def stop(self) -> None:
        """Ends :meth:`run` after the batch in progress is stored; safe from signal handlers."""
        self._stop.set()

    def run(self, idle_exit_s: float | None = None) -> MaterializerStats:
        from confluent_kafka import Consumer

        lock = self._lock()
        if not fix_mmap_threshold():
            log.info("no glibc in this process: its mmap threshold is left as it is")
        try:
            self._writer = EventWriter(self.data_dir, "materialize")
            finished = self._writer.recover()
            if finished:
                log.info("finished %d store changes interrupted by a crash", finished)
            decoder = AvroBatchDecoder(self.data_dir / layout.STAGING / "decode")
            self._consumer = Consumer(self._config)
            self._consumer.subscribe([self.topic], on_assign=self._on_assign)
            log.info(
                "materializing %s from %s into %s",
                self.topic,
                self._config["bootstrap.servers"],
                self.data_dir,
            )
            try:
                with ThreadPoolExecutor(1, thread_name_prefix="faro-store") as writes:
                    try:
                        self._loop(decoder, writes, idle_exit_s)
                    finally:
                        self._written()  # the last batch is stored before the consumer closes
            finally:
                self._consumer.close()
        finally:
            lock.close()
        log.info(
            "stopped: %d events stored in %d files (%.0f events/s), %d dead letters, "
            "%d duplicates dropped",
            self.stats.events,
            self.stats.files,
            self.stats.rate(),
            self.stats.dead_letters,
            self.stats.duplicates,
        )
        return self.stats

    def _lock(self) -> Any:
        return hold_lock(
            self.data_dir / layout.STATE / "materializer.lock",
            f"another materializer is writing to {self.data_dir}; stop it or use "
            "another --data-dir",
        )

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        assert self._writer is not None
        self._written()  # else a batch still being written would be consumed again
        stored = self._writer.journal.offsets().get(self.topic, {})
        for tp in partitions:
            last = stored.get(str(tp.partition))
            if last is not None:
                tp.offset = last + 1
                _, high = consumer.get_watermark_offsets(tp, timeout=5.0)
                if high <= last:
                    log.warning(
                        "partition %d ends at offset %d but the store already holds up to "
                        "%d: was the topic recreated, or is this another cluster? Messages "
                        "below %d will be skipped; use a fresh --data-dir for a new topic",
                        tp.partition, high, last, last + 1,
                    )  # fmt: skip
        consumer.assign(partitions)
        log.info(
            "assigned partitions %s; resuming after the store's offsets %s",
            [tp.partition for tp in partitions],
            {p: o for p, o in stored.items()} or "(none yet)",
        )

    def _loop(
        self, decoder: AvroBatchDecoder, writes: ThreadPoolExecutor, idle_exit_s: float | None
    ) -> None:
        batch: list[Any] = []
        batch_started = 0.0
        first_message: float | None = None
        last_message = time.monotonic()
        progress = _Progress(self, self.progress_interval_s)
        while True:
            stopping = self._stop.is_set()
            if not stopping:
                want = min(self.batch_size - len(batch), 10_000)
                messages = self._consumer.consume(num_messages=want, timeout=0.2)
                good = [m for m in messages if m.error() is None]
                if len(good) != len(messages):
                    _report_errors(messages)
                if good:
                    last_message = time.monotonic()
                    if not batch:
                        batch_started = last_message
                        if first_message is None:
                            first_message = batch_started
                    batch += good
                    self.pending += len(good)
            if self._writing is not None and self._writing.done():
                self._written()
            now = time.monotonic()
            full = len(batch) >= self.batch_size
            due = batch and now - batch_started >= self.max_batch_seconds
            if batch and (full or due or stopping):
                assert first_message is not None
                decoded, table, dead = self._decode(batch, decoder)
                self._written()
                self._writing = writes.submit(self._write, decoded, table, dead, first_message)
                batch = []
            progress.maybe_log(now)
            if stopping:
                return
            if idle_exit_s is not None and now - last_message > idle_exit_s:
                log.info("no message for %.0f s; stopping", idle_exit_s)
                return

    def _decode(
        self, batch: list[Any], decoder: AvroBatchDecoder
    ) -> tuple[_Decoded, pa.Table, pa.Table]:
        """A batch as the writer takes it: its bookkeeping, its events and its dead
        letters. The messages themselves can then be freed."""
        from confluent_kafka import Message

        # map() over the method, not a comprehension, and numpy for the partitions:
        # 1.5 ms of a 25,000-message batch's bookkeeping, against 3.5
        values = list(map(Message.value, batch))
        partitions = np.fromiter(map(Message.partition, batch), np.int32, len(batch))
        decoded = decoder.decode(values)
        kept_partitions = pa.array(partitions)
        if len(decoded.kept) != len(batch):
            kept_partitions = kept_partitions.take(pa.array(decoded.kept, pa.int64()))
        table = decoded.table.append_column(KAFKA_PARTITION, kept_partitions)
        # Offsets ascend per partition: its range runs from its first message to its last.
        ids, first = np.unique(partitions, return_index=True)
        last = len(batch) - 1 - np.unique(partitions[::-1], return_index=True)[1]
        ranges = {
            int(p): (batch[f].offset(), batch[i].offset())
            for p, f, i in zip(ids, first.tolist(), last.tolist(), strict=True)
        }
        rejected = [(batch[i].offset(), reason) for i, reason in decoded.rejected]
        dead = _dead_letters(self.topic, batch, decoded.rejected)
        return _Decoded(len(batch), ranges, rejected), table, dead

    def _write(
        self, batch: _Decoded, table: pa.Table, dead: pa.Table, first_message: float
    ) -> _Written:
        """On the write thread: stores one batch (files and offsets, as one change).
        The tables are not passed back, so they are freed as soon as they are written."""
        assert self._writer is not None
        summary = self._writer.write(table, KafkaSource(self.topic, batch.ranges), dead)
        return _Written(batch, summary, time.monotonic() - first_message)

    def _written(self) -> None:
        """Waits for the batch being written, if any, then counts it and commits its
        offsets (on this thread: the consumer is used from one thread only). A failed
        write raises here; its offsets were not stored, so a restart consumes it again."""
        from confluent_kafka import TopicPartition

        writing, self._writing = self._writing, None
        if writing is None:
            return
        done = writing.result()
        batch, summary = done.batch, done.summary
        self.pending -= batch.messages
        self.stats.events += summary.rows
        self.stats.duplicates += summary.duplicates
        self.stats.dead_letters += summary.dead_letters
        self.stats.files += len(summary.files)
        self.stats.batches += 1
        if batch.rejected:
            log.warning(
                "%d undecodable messages sent to dead letters (first: offset %d, %s)",
                len(batch.rejected),
                *batch.rejected[0],
            )
        # The commit is advisory (a restart resumes after the store's own offsets), so
        # the loop does not wait for the broker's answer; failures reach _on_commit.
        commits = [TopicPartition(self.topic, p, last + 1) for p, (_, last) in batch.ranges.items()]
        try:
            self._consumer.commit(offsets=commits, asynchronous=True)
        except Exception as exc:
            _on_commit(exc, commits)
        self.stats.busy_seconds = done.busy_seconds


@dataclass
class _Decoded:
    """What the loop keeps of a decoded batch until it is stored."""

    messages: int
    ranges: dict[int, tuple[int, int]]  # partition -> (first, last) offset
    rejected: list[tuple[int, str]]  # (offset, reason) of each dead letter


@dataclass
class _Written:
    batch: _Decoded
    summary: WriteSummary
    busy_seconds: float  # from the run's first message to this batch stored


_MMAP_THRESHOLD = 128 * 1024


def fix_mmap_threshold() -> bool:
    """Fixes glibc's mmap threshold for this process at 128 KiB; False where there
    is no glibc (musl, macOS), which is then left as it is.

    glibc serves allocations of at least the threshold with their own mappings,
    returned to the system when freed, and by default raises the threshold to the
    size of each such block freed. After the first batch, a batch's big buffers
    therefore come from the main heap, which only shrinks from its top. With one
    batch decoded while the previous one is written, the two batches' buffers
    interleave there and the heap kept growing: peak RSS 422-455 MB at 1 M
    events, against 256-267 MB with the threshold fixed (128 KiB is glibc's
    starting value). The fixed threshold costs ~8 % of the speed: more blocks
    are mapped and unmapped.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(-3, _MMAP_THRESHOLD))  # -3: M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        return False


def peak_rss_mb() -> float:
    """This process's peak resident memory: what ``--batch-size`` trades against speed.

    On Linux the kernel's VmHWM, which is this program's own: ``ru_maxrss`` also
    counts the parent's memory at the fork that started it (a materializer spawned
    by a 279 MB process reported 279 MB whatever it used itself).
    """
    try:
        status = Path("/proc/self/status").read_text()
        return int(status.split("VmHWM:")[1].split()[0]) / 1024  # kB
    except (OSError, IndexError, ValueError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / (1024 * 1024 if sys.platform == "darwin" else 1024)  # bytes there, KiB


def _report_errors(messages: list[Any]) -> None:
    """Raises on a fatal consumer error; logs the others (librdkafka retries them)."""
    for message in messages:
        error = message.error()
        if error is not None:
            if error.fatal():
                raise RuntimeError(f"Kafka consumer failed: {error}")
            log.warning("Kafka: %s", error)


def _dead_letters(topic: str, batch: list[Any], rejected: list[tuple[int, str]]) -> pa.Table:
    now = int(time.time() * 1000)
    rows = [
        {
            "topic": topic,
            "partition": batch[i].partition(),
            "offset": batch[i].offset(),
            "key": batch[i].key(),
            "value": batch[i].value(),
            "reason": reason,
            "received_at": now,
        }
        for i, reason in rejected
    ]
    return pa.Table.from_pylist(rows, schema=DEAD_LETTER_SCHEMA)


def keep_pandas_out() -> None:
    """Keeps pandas from loading into this process, for processes that only
    materialize (``faro materialize``).

    Nothing here uses pandas, but when it is installed, pyarrow and DuckDB's
    client import it on first use: about 45 MB of resident memory, a sixth of
    the materializer's budget. Call it before anything imports pandas; after
    it, importing pandas in this process fails with a message saying why.
    """
    if "pandas" not in sys.modules and not any(isinstance(f, _NoPandas) for f in sys.meta_path):
        sys.meta_path.insert(0, _NoPandas())


class _NoPandas:
    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name == "pandas" or name.startswith("pandas."):
            raise ModuleNotFoundError(
                "pandas is kept out of the materializer's process to save memory "
                "(faro.store.materializer.keep_pandas_out)",
                name=name,
            )


class _Progress:
    """Logs throughput, peak memory and lag every ``interval`` seconds."""

    def __init__(self, materializer: Materializer, interval: float) -> None:
        self._m = materializer
        self._interval = interval
        self._last = time.monotonic()
        self._events = 0

    def maybe_log(self, now: float) -> None:
        if now - self._last < self._interval:
            return
        done = self._m.stats.events + self._m.stats.dead_letters
        rate = (done - self._events) / (now - self._last)
        log.info(
            "%.0f events/s, %d stored, %d dead letters, %d consumed not yet stored, "
            "peak memory %.0f MB, lag %s",
            rate,
            self._m.stats.events,
            self._m.stats.dead_letters,
            self._m.pending,
            peak_rss_mb(),
            self._lag(),
        )
        self._last, self._events = now, done

    def _lag(self) -> str:
        """Messages on the broker that are not in the store yet."""
        m = self._m
        assert m._writer is not None
        stored = m._writer.journal.offsets().get(m.topic, {})
        try:
            assigned = m._consumer.assignment()
            if not assigned:  # not in the group yet, or the brokers are out of reach
                return "unknown (no partitions assigned yet)"
            lag = 0
            for tp in assigned:
                _, high = m._consumer.get_watermark_offsets(tp, cached=True)
                if high >= 0:
                    lag += max(0, high - stored.get(str(tp.partition), -1) - 1)
            return f"{lag} messages"
        except Exception as exc:
            return f"unknown ({exc})"
