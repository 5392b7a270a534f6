"""The trace index names exactly the rows that hold a trace, as files come and go."""

from __future__ import annotations

from pathlib import Path

import duckdb

from faro.store.maintenance import compact
from faro.store.queries import StoreQueries
from tests.api.dataset import generate
from tests.store.events import write_parts


def holding(files: list[str], trace: str) -> dict[str, list[int]]:
    rows = duckdb.execute(
        "SELECT filename, file_row_number FROM read_parquet($files, file_row_number = true) "
        "WHERE trace_id = $t ORDER BY ALL",
        {"files": files, "t": trace},
    ).fetchall()
    return {f: [n for g, n in rows if g == f] for f in sorted({f for f, _ in rows})}


def test_lookups_read_only_the_rows_holding_the_trace(tmp_path: Path) -> None:
    ds = generate()
    stored = write_parts(tmp_path, ds.events, range(3), of=4)
    indexed, scanned = StoreQueries(tmp_path), StoreQueries(tmp_path, caches=False)
    assert indexed.traces is not None
    traces = sorted({e.trace_id for e in ds.events if e.trace_id})

    def check() -> None:
        files = indexed._files("ENTITY")
        for trace in traces[::7]:  # each trace spans two pipelines, so several files
            found = indexed.traces.rows_of(trace, files)  # type: ignore[union-attr]
            assert {f: sorted(r) for f, r in sorted(found.items())} == holding(files, trace)
            expected = scanned.trace(trace)
            assert indexed.trace(trace) == expected
            assert len(expected) == sum(e.trace_id == trace for e in stored)
        assert indexed.trace("no-such-trace") == []

    check()
    stored += write_parts(tmp_path, ds.events, [3], of=4)  # a new file
    check()
    compact(tmp_path)  # every file replaced
    check()
