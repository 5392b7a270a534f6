"""The hash indexes name exactly the files and rows that hold a trace or an entity,
as files come and go, and indexed answers equal scanned ones."""

from __future__ import annotations

from pathlib import Path

import duckdb

from faro.store.maintenance import compact
from faro.store.queries import StoreQueries
from tests.api.dataset import generate
from tests.store.events import write_parts


def holding(files: list[str], column: str, value: str) -> dict[str, list[int]]:
    rows = duckdb.execute(
        "SELECT filename, file_row_number FROM read_parquet($files, file_row_number = true) "
        f"WHERE {column} = $v ORDER BY ALL",
        {"files": files, "v": value},
    ).fetchall()
    return {f: [n for g, n in rows if g == f] for f in sorted({f for f, _ in rows})}


def test_indexed_lookups_read_only_what_holds_the_trace_or_entity(tmp_path: Path) -> None:
    ds = generate()
    stored = write_parts(tmp_path, ds.events, range(3), of=4)
    indexed, scanned = StoreQueries(tmp_path), StoreQueries(tmp_path, caches=False)
    assert indexed.traces is not None and indexed.entities is not None
    traces = sorted({e.trace_id for e in ds.events if e.trace_id})
    entities = sorted({(e.entity_id, e.pipeline_id, e.feature_name)
                       for e in ds.events if e.entity_id})  # fmt: skip
    since = ds.now - 3 * 3_600_000

    def check() -> None:
        files = indexed._files("ENTITY")
        for trace in traces[::7]:  # each trace spans two pipelines, so several files
            found = indexed.traces.rows_of(trace, files)  # type: ignore[union-attr]
            assert {f: sorted(r) for f, r in sorted(found.items())} == holding(
                files, "trace_id", trace
            )
            expected = scanned.trace(trace)
            assert indexed.trace(trace) == expected
            assert len(expected) == sum(e.trace_id == trace for e in stored)
        for entity, pipeline, feature in entities[::5]:
            found = indexed.entities.files_of(entity, files)  # type: ignore[union-attr]
            assert found == sorted(holding(files, "entity_id", entity))
            expected = scanned.lineage(entity)
            assert indexed.lineage(entity) == expected
            assert len(expected) == sum(e.entity_id == entity for e in stored)
            values = indexed.entity_values(feature, pipeline, entity, since)
            assert values == scanned.entity_values(feature, pipeline, entity, since)
            assert len(values) == sum(
                (e.entity_id, e.pipeline_id, e.feature_name) == (entity, pipeline, feature)
                and e.processing_time >= since
                for e in stored
            )
        group = [*sorted({e for e, _, _ in entities[::3]}), "no-such-entity"]
        found = indexed.entities.files_of_any(group, files)  # type: ignore[union-attr]
        assert found == sorted({f for e in group for f in holding(files, "entity_id", e)})
        assert indexed.trace("no-such-trace") == []
        assert indexed.lineage("no-such-entity") == []

    check()
    stored += write_parts(tmp_path, ds.events, [3], of=4)  # a new file
    check()
    compact(tmp_path)  # every file replaced
    check()
