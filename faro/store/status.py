"""What a store holds and how far it has got: for whoever runs faro itself.

Is the materializer keeping up, are dead letters piling up, does the store
need ``faro compact``? ``faro status`` prints the answer and ``GET /store``
returns it. It comes from directory names, Parquet footers and the store's
own state files, so it reads no event however big the store grows; only the
dead letters' reasons are read, a column of files that stay small unless
something upstream is wrong.
"""

from __future__ import annotations

import functools
import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from faro.core.failures import KafkaClientLog
from faro.core.windows import format_time
from faro.store import layout
from faro.store.journal import Journal

log = logging.getLogger("faro.store.status")

_REASONS_SHOWN = 5
_METADATA_TIMEOUT_S = 10.0
DELTA_PREFIX = "delta:"


@dataclass(frozen=True)
class Holding:
    """The events of one type and pipeline."""

    event_type: str
    pipeline_id: str
    events: int
    files: int
    bytes: int
    first_date: str
    last_date: str
    newest: int | None  # the latest processing time stored (epoch ms), from the footers
    partitions_to_compact: int  # date partitions of two files or more


@dataclass(frozen=True)
class Reason:
    reason: str  # what went wrong, without the message's own details
    count: int


@dataclass(frozen=True)
class DeadLetter:
    """The newest dead letter: where it came from and why, in full."""

    source: str | None  # a Kafka topic, or a Delta table (``delta:...``)
    partition: int | None
    offset: int | None  # the Kafka offset, or the Delta version
    reason: str
    received_at: int


@dataclass(frozen=True)
class DeadLetters:
    count: int = 0
    kinds: list[Reason] = field(default_factory=list)  # the commonest, most first
    newest: DeadLetter | None = None


@dataclass(frozen=True)
class KafkaLag:
    """One topic partition: how far the store has got against the broker's end."""

    topic: str
    partition: int
    stored_through: int | None  # the last offset stored; None: nothing stored from it
    end: int  # the offset the next message will get
    lag: int  # messages on the broker that are not in the store


@dataclass(frozen=True)
class StoreStatus:
    data_dir: str
    holdings: list[Holding]
    dead_letters: DeadLetters
    progress: dict[str, dict[str, int]]  # what _state/offsets.json records per source
    unfinished_changes: int  # journal entries decided but not yet applied

    @property
    def events(self) -> int:
        return sum(h.events for h in self.holdings)

    @property
    def files(self) -> int:
        return sum(h.files for h in self.holdings)

    @property
    def bytes(self) -> int:
        return sum(h.bytes for h in self.holdings)

    @property
    def newest(self) -> int | None:
        return max((h.newest for h in self.holdings if h.newest is not None), default=None)

    @property
    def partitions_to_compact(self) -> int:
        return sum(h.partitions_to_compact for h in self.holdings)

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "events": self.events,
            "files": self.files,
            "bytes": self.bytes,
            "newest": self.newest,
            "partitions_to_compact": self.partitions_to_compact,
        }


def store_status(data_dir: Path | str) -> StoreStatus:
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise ValueError(
            f"no store at {data_dir}: pass the directory the materializer or `faro serve` "
            "uses (--data-dir, or FARO_LOCAL_PATH)"
        )
    journal_dir = data_dir / layout.JOURNAL
    return StoreStatus(
        data_dir=str(data_dir),
        holdings=_holdings(data_dir),
        dead_letters=_dead_letters(data_dir),
        progress=Journal(data_dir, "status").offsets(),
        unfinished_changes=len(list(journal_dir.glob("*.json"))) if journal_dir.is_dir() else 0,
    )


def _holdings(data_dir: Path) -> list[Holding]:
    out = []
    groups: dict[tuple[str, str], list[tuple[str, Path]]] = {}
    for partition in layout.event_partitions(data_dir):
        values = layout.partition_values(partition.relative_to(data_dir))
        key = (values["event_type"], values["pipeline_id"])
        groups.setdefault(key, []).append((values["date"], partition))
    for (event_type, pipeline_id), partitions in sorted(groups.items()):
        events = files = size = to_compact = 0
        newest: int | None = None
        dates = []
        for date, partition in partitions:
            counted = 0
            for path in sorted(partition.glob("*.parquet")):
                try:  # a file compacted or expired away meanwhile is not counted
                    rows, latest, nbytes = _footer(path)
                except FileNotFoundError:
                    continue
                counted += 1
                events += rows
                size += nbytes
                if latest is not None and (newest is None or latest > newest):
                    newest = latest
            if counted:
                files += counted
                dates.append(date)
                to_compact += counted >= 2
        if files:
            out.append(Holding(
                event_type, pipeline_id, events, files, size, min(dates), max(dates), newest,
                to_compact,
            ))  # fmt: skip
    return out


def _footer(path: Path) -> tuple[int, int | None, int]:
    """Rows, the largest processing time in the row groups' statistics, and bytes."""
    st = path.stat()
    rows, latest = _footer_of(str(path), st.st_mtime_ns, st.st_size)
    return rows, latest, st.st_size


@functools.lru_cache(maxsize=1 << 18)
def _footer_of(path: str, mtime_ns: int, size: int) -> tuple[int, int | None]:
    """Cached under the file's name, time and size: a store file never changes in
    place, so ``GET /store`` reads each footer once (~1 ms for a file of eight row
    groups) however often it is asked."""
    meta = pq.read_metadata(path)
    latest: int | None = None
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        for c in range(group.num_columns):
            column = group.column(c)
            if column.path_in_schema != "processing_time":
                continue
            stats = column.statistics
            if stats is not None and stats.has_min_max and (latest is None or stats.max > latest):
                latest = int(stats.max)
            break
    return meta.num_rows, latest


def _dead_letters(data_dir: Path) -> DeadLetters:
    """Counted by kind: a reason up to its first colon, which leaves out the message's
    own bytes and offsets, so that one cause is one line however often it recurs."""
    kinds: Counter[str] = Counter()
    newest: DeadLetter | None = None
    for path in sorted((data_dir / layout.DEAD_LETTERS).glob("date=*/*.parquet")):
        try:
            st = path.stat()
            file_kinds, file_newest = _dead_letter_file(str(path), st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            continue
        kinds.update(file_kinds)
        if file_newest is not None and (
            newest is None or file_newest.received_at >= newest.received_at
        ):
            newest = file_newest
    commonest = [Reason(k, n) for k, n in kinds.most_common(_REASONS_SHOWN)]
    return DeadLetters(sum(kinds.values()), commonest, newest)


@functools.lru_cache(maxsize=1 << 14)
def _dead_letter_file(
    path: str, mtime_ns: int, size: int
) -> tuple[Counter[str], DeadLetter | None]:
    """One dead-letter file's kinds and newest letter; cached as the footers are, since
    ``/metrics`` asks on every scrape."""
    rows = pq.read_table(
        path, columns=["topic", "partition", "offset", "reason", "received_at"]
    ).to_pylist()
    newest: DeadLetter | None = None
    for r in rows:
        if newest is None or (r["received_at"] or 0) >= newest.received_at:
            newest = DeadLetter(
                r["topic"], r["partition"], r["offset"], str(r["reason"]), r["received_at"] or 0
            )
    return Counter(str(r["reason"]).split(":", 1)[0] for r in rows), newest


def kafka_lag(
    bootstrap_servers: str,
    topics: Iterable[str],
    progress: Mapping[str, Mapping[str, int]],
    consumer_config: Mapping[str, Any] | None = None,
) -> list[KafkaLag]:
    """Per partition of each topic: the broker's end against the last offset stored.

    Reads the broker's offsets only: it joins no consumer group and commits
    nothing, so it never moves the materializer's position.
    """
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    client_log = KafkaClientLog(bootstrap_servers, log)
    consumer = Consumer({
        "bootstrap.servers": bootstrap_servers,
        "group.id": "faro-status",  # required by the client; never joined
        "enable.auto.commit": False,
        "error_cb": client_log.error,
        "logger": client_log,
        **(consumer_config or {}),
    })  # fmt: skip
    out = []
    try:
        for topic in topics:
            try:
                metadata = consumer.list_topics(topic, timeout=_METADATA_TIMEOUT_S)
            except KafkaException as exc:
                raise RuntimeError(
                    f"no answer from Kafka at {bootstrap_servers} within "
                    f"{_METADATA_TIMEOUT_S:.0f} s ({exc.args[0]}); check --bootstrap-servers"
                ) from None
            found = metadata.topics.get(topic)
            if found is None or found.error is not None or not found.partitions:
                raise RuntimeError(
                    f"topic {topic!r} does not exist on {bootstrap_servers}; name the "
                    "materializer's topic with --topic"
                )
            stored = progress.get(topic, {})
            for partition in sorted(found.partitions):
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=_METADATA_TIMEOUT_S
                )
                through = stored.get(str(partition))
                # what the broker still keeps and the store does not have
                first_missing = low if through is None else max(low, through + 1)
                out.append(KafkaLag(topic, partition, through, high, max(0, high - first_missing)))
    finally:
        consumer.close()
    return out


def describe(status: StoreStatus, lags: list[KafkaLag] | None = None, now_ms: int = 0) -> str:
    """The status as ``faro status`` prints it."""
    lines = [f"store {status.data_dir}"]
    if not status.holdings:
        lines.append("  no events stored yet")
    else:
        newest = status.newest
        age = "" if newest is None else (
            f"; the newest processed {format_time(newest)} ({_age(now_ms - newest)} ago)"
        )  # fmt: skip
        lines.append(
            f"  {status.events:,} events in {status.files:,} files "
            f"({status.bytes / 1e6:,.1f} MB){age}"
        )
        rows: list[tuple[str, ...]] = [
            ("event type", "pipeline", "events", "files", "MB", "dates", "to compact")
        ]
        for h in status.holdings:
            dates = h.first_date if h.first_date == h.last_date else (
                f"{h.first_date} .. {h.last_date}"
            )  # fmt: skip
            rows.append((
                h.event_type, h.pipeline_id, f"{h.events:,}", f"{h.files:,}",
                f"{h.bytes / 1e6:,.1f}", dates, str(h.partitions_to_compact),
            ))  # fmt: skip
        lines += _table(rows, right={2, 3, 4, 6})
    dead = status.dead_letters
    if dead.count:
        lines.append(f"  dead letters: {dead.count:,}")
        lines += [f"    {r.count:>8,}  {r.reason}" for r in dead.kinds]
        if dead.newest is not None:
            n = dead.newest
            where = (
                ""
                if n.source is None
                else f" from {n.source} partition {n.partition} offset {n.offset}"
            )
            lines.append(
                f"    the newest, received {format_time(n.received_at)}{where}: {n.reason}"
            )
    else:
        lines.append("  dead letters: none")
    by_partition = {(lag.topic, str(lag.partition)): lag for lag in lags or []}
    for source, parts in sorted(status.progress.items()):
        for part, offset in sorted(parts.items(), key=lambda kv: _sortable(kv[0])):
            if source.startswith(DELTA_PREFIX):
                lines.append(f"  imported {source[len(DELTA_PREFIX) :]} through {part} {offset}")
                continue
            lag = by_partition.pop((source, part), None)
            behind = "" if lag is None else f"; {lag.lag:,} more on the broker"
            lines.append(f"  stored {source} partition {part} through offset {offset:,}{behind}")
    for lag in by_partition.values():  # partitions the store has nothing from yet
        lines.append(
            f"  stored nothing of {lag.topic} partition {lag.partition}; {lag.lag:,} on the broker"
        )
    if status.partitions_to_compact:
        lines.append(
            f"  {status.partitions_to_compact:,} partitions hold two files or more: "
            "`faro compact` merges them, which makes queries over them faster"
        )
    if status.unfinished_changes:
        lines.append(
            f"  {status.unfinished_changes} changes decided but not yet applied: a writer is "
            "applying them now, or stopped mid-way and finishes them when it starts again"
        )
    return "\n".join(lines)


def _sortable(part: str) -> tuple[int, str]:
    return (int(part), "") if part.isdigit() else (0, part)


def _table(rows: list[tuple[str, ...]], right: set[int]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [
        "  " + "  ".join(
            cell.rjust(w) if i in right else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]  # fmt: skip


def _age(ms: int) -> str:
    seconds = max(0, ms) / 1000
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"
