"""``faro skew``: a model's log of served values, checked through the query API.

A prediction log is a file (Parquet, CSV or JSON lines) with a row per feature
read: the entity, when it was read and the value served. It can hold millions
of rows; the API takes up to 10,000 per request, so the log is read in chunks,
each checked by ``POST /features/{feature}/skew``, and the answers are added up.
Going through the API, not the store, lets it run wherever the API is reachable.
"""

from __future__ import annotations

import datetime as dt
import json
import statistics
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

import pyarrow as pa

from faro.api_client import call

CHUNK = 10_000
HOURS_LISTED = 48
_COUNTS = ("rows", "compared", "matched", "mismatched", "outdated", "not_captured")


@dataclass
class Columns:
    entity: str
    time: str
    values: dict[str, str]
    """each checked feature's column of served values"""


@dataclass
class Totals:
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_COUNTS, 0))
    hours: dict[int, list[int]] = field(default_factory=dict)
    """compared, mismatched and outdated rows per UTC hour (start, epoch ms)"""
    not_sampled: int | None = 0
    """None once an answer could not tell (no captured value gave the sample rate)"""
    missing: int = 0
    lags: list[int] = field(default_factory=list)
    """each outdated row's ``outdated_ms``: how far the serving path was behind"""

    def add(self, answer: dict[str, Any]) -> None:
        for name in _COUNTS:
            self.counts[name] += answer[name]
        if self.not_sampled is not None and answer["not_sampled"] is not None:
            self.not_sampled += answer["not_sampled"]
        elif answer["not_captured"]:
            self.not_sampled = None
        self.missing += len(answer["missing"])
        self.lags += [
            m["outdated_ms"] for m in answer["mismatches"] if m["outdated_ms"] is not None
        ]
        for h in answer["hours"]:
            counts = self.hours.setdefault(h["start"], [0, 0, 0])
            for k, name in enumerate(("compared", "mismatched", "outdated")):
                counts[k] += h[name]

    @property
    def mismatch_rate(self) -> float | None:
        compared = self.counts["compared"]
        return self.counts["mismatched"] / compared if compared else None

    def summary(self) -> str:
        c = self.counts
        rate = self.mismatch_rate
        lines = [
            f"rows                {c['rows']:>12,}",
            f"compared            {c['compared']:>12,}",
            f"  matched           {c['matched']:>12,}",
            f"  mismatched        {c['mismatched']:>12,}"
            + ("" if rate is None else f"   ({rate:.2%} of compared)"),
            f"    of them outdated{c['outdated']:>12,}   (a value the pipeline had replaced"
            + self._lag()
            + ")",
            f"not captured        {c['not_captured']:>12,}   (no value in the lookback)",
        ]
        if self.not_sampled is None:
            lines[-1] += ": the sample rate is unknown, so not split below"
        else:
            lines += [
                f"  not sampled       {self.not_sampled:>12,}   (sampling leaves these entities "
                "out: as expected)",
                f"  missing           {self.missing:>12,}   (sampled, yet never computed by "
                "then: served what the pipeline had not)",
            ]
        return "\n".join(lines + self._hour_lines())

    def _lag(self) -> str:
        """How long the outdated values had been replaced: median and most."""
        if not self.lags:
            return ""
        median = statistics.median(self.lags) / 1000
        return f"; by {median:,.1f} s median, {max(self.lags) / 1000:,.1f} s at most"

    def _hour_lines(self, most: int = HOURS_LISTED) -> list[str]:
        """The hours with mismatches, oldest first: when the serving path went wrong."""
        bad = [(start, c) for start, c in sorted(self.hours.items()) if c[1]]
        if not bad:
            return []
        lines = ["", f"{'hour (UTC)':<18}{'compared':>12}{'mismatched':>12}{'outdated':>10}"]
        for start, (n, mismatched, outdated) in bad[:most]:
            hour = dt.datetime.fromtimestamp(start / 1000, dt.timezone.utc)
            lines.append(f"{hour:%Y-%m-%d %H:%M}  {n:>12,}{mismatched:>12,}{outdated:>10,}")
        if len(bad) > most:
            lines.append(f"... and {len(bad) - most:,} more hours with mismatches")
        return lines


def chunks(
    path: Path, columns: Columns, size: int = CHUNK
) -> Iterator[dict[str, list[dict[str, Any]]]]:
    """The log's rows as the API's ``rows``, per feature, at most ``size`` at a time."""
    wanted = [columns.entity, columns.time, *columns.values.values()]
    if len(set(wanted)) < len(wanted):
        raise ValueError(
            f"the entity, time and value columns must all differ, got {', '.join(wanted)}: "
            "set --entity-column, --time-column and --value-column"
        )
    for batch in _batches(path, wanted, size):
        entities = ["" if e is None else str(e) for e in batch.column(columns.entity).to_pylist()]
        times = _times(batch.column(columns.time), columns.time)
        yield {
            feature: [
                {"entity_id": e, "at": t, "value": v}
                for e, t, v in zip(entities, times, batch.column(column).to_pylist(), strict=True)
            ]
            for feature, column in columns.values.items()
        }


def _batches(path: Path, wanted: list[str], size: int) -> Iterator[pa.RecordBatch]:
    """The ``wanted`` columns, at most ``size`` rows a batch. Parquet and CSV are
    streamed, so a log larger than memory works; JSON lines are read whole."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        log = pq.ParquetFile(path)
        _require(wanted, log.schema_arrow.names, path)
        yield from log.iter_batches(batch_size=size, columns=wanted)
        return
    if suffix == ".csv":
        import pyarrow.csv as csv

        with csv.open_csv(path) as header:  # the names, from the first block alone
            _require(wanted, header.schema.names, path)
        only = csv.ConvertOptions(include_columns=wanted)  # other columns are not converted
        batches: Iterator[pa.RecordBatch] = iter(csv.open_csv(path, convert_options=only))
    elif suffix in (".json", ".jsonl", ".ndjson"):
        import pyarrow.json as pj

        table = pj.read_json(path)
        _require(wanted, table.column_names, path)
        batches = iter(table.select(wanted).to_batches())
    else:
        raise ValueError(
            f"{path}: give a .parquet, .csv or .jsonl file (JSON lines: one object per line)"
        )
    for batch in batches:
        for offset in range(0, batch.num_rows, size):
            yield batch.slice(offset, size)


def _require(wanted: list[str], present: list[str], path: Path) -> None:
    missing = [name for name in wanted if name not in present]
    if missing:
        raise ValueError(
            f"{path} has no column {', '.join(map(repr, missing))}; its columns: "
            f"{', '.join(present)}. Name yours with --entity-column, --time-column and "
            "--value-column"
        )


def _times(column: pa.Array, name: str) -> list[Any]:
    """Epoch ms for timestamps (a timestamp without zone is UTC) and integers (taken
    as epoch ms); strings go to the API as they are (ISO-8601)."""
    kind = column.type
    if pa.types.is_timestamp(kind):
        return column.cast(pa.timestamp("ms", kind.tz), safe=False).cast(pa.int64()).to_pylist()
    if pa.types.is_integer(kind) or pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return column.to_pylist()
    raise ValueError(
        f"the time column {name!r} is {kind}; give timestamps, epoch milliseconds or "
        "ISO-8601 strings"
    )


def run(
    path: Path,
    api: str,
    options: dict[str, Any],
    columns: Columns,
    mismatches: IO[str] | None,
    missing: IO[str] | None = None,
    progress: IO[str] | None = None,
) -> dict[str, Totals]:
    """Checks the whole log, feature by feature (``columns.values``); writes each
    mismatched row as a JSON line to ``mismatches`` and each missing one to
    ``missing``, with its ``feature`` and its ``index``, the row's position in the
    log; progress goes to ``progress`` (default: stderr)."""
    totals = {feature: Totals() for feature in columns.values}
    for rows_of in chunks(path, columns):
        for feature, rows in rows_of.items():
            answer = call(
                api, f"/features/{quote(feature, safe='')}/skew", body={**options, "rows": rows}
            )
            for kind, out in (("mismatches", mismatches), ("missing", missing)):
                if out is not None:
                    for row in answer[kind]:
                        row["index"] += totals[feature].counts["rows"]
                        out.write(json.dumps({"feature": feature, **row}) + "\n")
            totals[feature].add(answer)
        n = next(iter(totals.values())).counts["rows"]
        bad = sum(t.counts["mismatched"] for t in totals.values())
        stale = sum(t.counts["outdated"] for t in totals.values())
        print(
            f"checked {n:,} rows: {bad:,} mismatched values ({stale:,} outdated)"
            + (f" in {len(totals)} features" if len(totals) > 1 else ""),
            file=progress or sys.stderr,
            flush=True,
        )
    return totals
