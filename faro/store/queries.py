"""Every SQL statement the API runs, over the Parquet store, parameterized.

Files are listed per request from the store's partition directories (so new
files are visible at once and a query reads only the partitions it needs);
DuckDB reads them read-only. Identifiers never come from a request: values
are bound as parameters, and directories are chosen by percent-encoding.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from faro.core.events import TIME_HIGH
from faro.store import layout
from faro.store.columns import SCHEMA
from faro.store.hash_index import HashIndex
from faro.store.rollups import LAG, REAL_TIME, Kind, RollupCache, aligned
from faro.store.value_cache import ValueCache

_T = TypeVar("_T")
_NULLS = (
    "count(*) FILTER (WHERE feature_value IS NULL AND feature_value_string IS NULL "
    "AND feature_value_vector IS NULL)"
)
"""How many ENTITY values are null: no typed column holds a value (``{nulls}`` in SQL)."""
_WINDOW = "feature_name = $feature AND processing_time >= $since AND processing_time < $until"
"""ENTITY events of one feature in a window of processing time."""
_TRACE = """
    SELECT pipeline_id, operator_id, operator_type, feature_name, entity_id,
           feature_value, value_type, event_time, processing_time, subtask_index, event_id
    FROM {events} WHERE trace_id = $trace
    ORDER BY processing_time, pipeline_id, operator_id, event_id
"""
"""Every ENTITY event of one trace, in processing order."""
_ENTITY_VALUES = """
    SELECT processing_time, operator_id, event_time, trace_id, value_type, feature_value
           {typed}
    FROM {events}
    WHERE feature_name = $feature AND entity_id = $entity
      AND processing_time >= $since AND processing_time < $until
    ORDER BY ALL
"""
"""One entity's values of one feature in [since, until); ``{typed}``: more value columns."""
_NEWEST_FIRST = """processing_time DESC, event_time DESC NULLS LAST, trace_id DESC NULLS LAST,
    feature_value DESC NULLS LAST"""
"""An entity's values, later processing first; equal times in a fixed order."""
_LATEST = f"""
    QUALIFY row_number() OVER (
        PARTITION BY {{lookup}}pipeline_id, feature_name, operator_id
        ORDER BY {{axis}} DESC, {_NEWEST_FIRST}) = 1
    ORDER BY {{lookup}}pipeline_id, feature_name, operator_id
"""
"""Keeps, per pipeline, feature and operator (and lookup), the latest value on a time
axis ({axis}); ties go to the later processing."""
_AS_OF = """
    SELECT pipeline_id, feature_name, processing_time, operator_id, event_time, trace_id,
           value_type, feature_value {typed}
    FROM {events}
    WHERE entity_id = $entity AND {feature}
      AND processing_time BETWEEN $since AND $known AND {axis} BETWEEN $since AND $at
""" + _LATEST.replace("{lookup}", "")
"""One entity's values at ``$at``, among those processed by ``$known``."""
_AS_OF_MANY = """
    SELECT lookup, pipeline_id, feature_name, processing_time, operator_id, event_time,
           trace_id, value_type, feature_value {typed}
    FROM lookups JOIN {events}
      ON entity_id = lookup_entity
     AND processing_time BETWEEN lookup_since AND lookup_known
     AND {axis} BETWEEN lookup_since AND lookup_at
    WHERE {feature}
""" + _LATEST.replace("{lookup}", "lookup, ")
"""The same for each row of the table ``lookups`` (lookup, lookup_entity, lookup_at,
lookup_known, lookup_since), in one query."""
_HISTORIES = f"""
    SELECT lookup, processing_time, operator_id, event_time, trace_id, value_type,
           feature_value {{typed}}
    FROM lookups JOIN {{events}}
      ON entity_id = lookup_entity AND operator_id = lookup_operator
     AND processing_time BETWEEN lookup_since AND lookup_until
    WHERE feature_name = $feature
    ORDER BY lookup, {_NEWEST_FIRST}
"""
"""Each lookup's values of one feature from one operator, newest first, in one query:
in the order of :data:`_LATEST` by processing time, so the first is the value an
as-of lookup answers."""
_NO_FILES = {"no_events": SCHEMA.empty_table()}
"""A table of no events, read in place of a pipeline that has no files yet."""
_TYPED = ", feature_value_long, feature_value_bool, feature_value_string, feature_value_vector"
"""The value columns of types other than double."""
_ROLLUP_WINDOW = "feature = $feature AND minute >= $since AND minute < $until"
"""The same window over rollup rows (minutes that start inside it)."""
# The latest real watermark (by processing time, so one that went back shows as it is)
# and the flush that reported it: a watermark's lag is measured from that flush, not
# from a later one that carried none.
_LATEST_WATERMARK = f"""arg_max(watermark, processing_time) FILTER (WHERE watermark {REAL_TIME})
                       AS watermark,
                   max(processing_time) FILTER (WHERE watermark {REAL_TIME})
                       AS watermark_flush"""
_FIRE = f"window_start {REAL_TIME} AND window_end {REAL_TIME}"
"""An AGGREGATE event with window bounds: a window's fire (null when either is)."""


class StoreQueries:
    """Thread-safe: each call runs on its own DuckDB cursor.

    ``caches``: answer minute-aligned feature windows from per-file rollups
    (:mod:`faro.store.rollups`), value summaries from per-file values held in
    memory (:mod:`faro.store.value_cache`), and traces and an entity's events from
    the files (and rows) an index names (:mod:`faro.store.hash_index`) instead of
    scanning events each time; the answers are the same.
    """

    def __init__(self, data_dir: Path | str, caches: bool = True) -> None:
        self.data_dir = Path(data_dir)
        self._db = duckdb.connect(config={"enable_external_file_cache": False})
        # Store files are immutable (a rewrite gets a new name), so their footers can
        # be cached: a per-entity lookup then reads row groups, not every footer again.
        # GLOBAL: a plain SET holds for this connection only, not for the cursors
        # every query runs on (10 ms of the 40 an entity's values took at 10 M).
        self._db.execute("SET GLOBAL parquet_metadata_cache = true")
        self._lock = threading.Lock()
        self.rollups = RollupCache(self._arrow) if caches else None
        self.values = ValueCache(self._arrow) if caches else None
        self.traces = HashIndex(self._arrow, "trace_id", rows=True) if caches else None
        self.entities = HashIndex(self._arrow, "entity_id", rows=False) if caches else None

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        with self._lock:
            return self._db.cursor()

    def _files(
        self,
        event_type: str | None = None,
        pipeline_id: str | None = None,
        since: int | None = None,
        until: int | None = None,
    ) -> list[str]:
        paths = layout.event_files(self.data_dir, event_type, pipeline_id, since, until)
        return [str(p) for p in paths]

    def _holding(self, entity_id: str, files: list[str]) -> list[str]:
        """Those of ``files`` that may hold the entity's events."""
        return files if self.entities is None else self.entities.files_of(entity_id, files)

    def _rows(self, sql: str, files: list[str], **params: Any) -> list[dict[str, Any]]:
        """Runs ``sql`` with ``{events}`` reading ``files`` and ``{nulls}`` counting null
        ENTITY values; ``$name`` binds ``params``."""
        if not files:
            return []
        return self._run(sql, {"files": files, **params}, _dicts)

    def _rolled(
        self, kind: Kind, sql: str, files: list[str], **params: Any
    ) -> list[dict[str, Any]]:
        """Runs ``sql`` over the table ``rollup``: the ``kind`` rollups of ``files``."""
        if not files:
            return []
        assert self.rollups is not None, "callers check _use_rollups first"
        return self._run(sql, params, _dicts, {"rollup": self.rollups.table(kind, files)})

    def _run(
        self,
        sql: str,
        params: dict[str, Any],
        read: Callable[[duckdb.DuckDBPyConnection], _T],
        tables: dict[str, pa.Table] | None = None,
    ) -> _T:
        """``read``s the result of ``sql`` on a cursor of its own, with ``tables``
        registered under their names."""
        cursor = self._cursor()
        try:
            for name, table in (tables or {}).items():
                cursor.register(name, table)
            sql = sql.replace("{events}", "read_parquet($files, hive_partitioning = false)")
            return read(cursor.execute(sql.replace("{nulls}", _NULLS), params))
        finally:
            cursor.close()

    def _arrow(self, sql: str, params: dict[str, Any]) -> pa.Table:
        return self._run(sql, params, lambda result: result.to_arrow_table())

    def _use_rollups(self, *bounds: int) -> bool:
        return self.rollups is not None and aligned(*bounds)

    def pipelines(self) -> list[str]:
        names = {
            layout.partition_values(p)["pipeline_id"]
            for p in layout.event_partitions(self.data_dir)
        }
        return sorted(names)

    def features(self, pipeline_id: str | None = None) -> list[str]:
        return [f["name"] for f in self.feature_catalog(pipeline_id)]

    def feature_catalog(self, pipeline_id: str | None = None) -> list[dict[str, Any]]:
        """Each feature the operators declare (the ``features`` of their AGGREGATE
        events) or that has ENTITY values, by name, with ``entity_values``: whether
        any ENTITY event carries it. From the per-file rollups when kept, so only
        files not seen before are read."""
        flows = self._files("AGGREGATE", pipeline_id)
        values = self._files("ENTITY", pipeline_id)
        if self.rollups is not None:
            declared = self._rolled("flow", "SELECT DISTINCT feature AS name FROM rollup", flows)
            valued = self._rolled("values", "SELECT DISTINCT feature AS name FROM rollup", values)
        else:
            declared = self._rows("SELECT DISTINCT unnest(features) AS name FROM {events}", flows)
            valued = self._rows(
                "SELECT DISTINCT feature_name AS name FROM {events} WHERE feature_name IS NOT NULL",
                values,
            )
        with_values = {r["name"] for r in valued}
        names = {r["name"] for r in declared} | with_values
        return [{"name": n, "entity_values": n in with_values} for n in sorted(names - {None})]

    def operators(
        self, pipeline_id: str, since: int, until: int | None = None
    ) -> list[dict[str, Any]]:
        """Per operator: last flush, latest watermark and the flush that carried it
        before ``until`` (epoch ms; None: now), and totals in [since, until)."""
        return self._rows(
            f"""
            SELECT operator_id,
                   any_value(operator_type) AS operator_type,
                   max(processing_time) AS last_flush,
                   {_LATEST_WATERMARK},
                   sum(input_count) FILTER (WHERE processing_time >= $since) AS input_count,
                   sum(output_count) FILTER (WHERE processing_time >= $since) AS output_count,
                   sum(late_count) FILTER (WHERE processing_time >= $since) AS late_count,
                   count(DISTINCT subtask_index) AS subtasks
            FROM {{events}}
            WHERE processing_time < $until
            GROUP BY operator_id ORDER BY operator_id
            """,
            self._files("AGGREGATE", pipeline_id, until=until),
            since=since,
            until=_end(until),
        )

    def subtasks(
        self, pipeline_id: str, since: int, until: int | None = None
    ) -> list[dict[str, Any]]:
        """Per operator and subtask that flushed in [since, until) (epoch ms; None:
        now): its last flush there, its latest watermark and the flush that carried
        it, its records in, out and late, and how many flushes."""
        return self._rows(
            f"""
            SELECT operator_id, subtask_index,
                   any_value(operator_type) AS operator_type,
                   max(processing_time) AS last_flush,
                   {_LATEST_WATERMARK},
                   sum(input_count)::BIGINT AS input_count,
                   sum(output_count)::BIGINT AS output_count,
                   sum(late_count)::BIGINT AS late_count,
                   count(*) AS flushes
            FROM {{events}}
            WHERE processing_time >= $since AND processing_time < $until
            GROUP BY operator_id, subtask_index ORDER BY operator_id, subtask_index
            """,
            self._files("AGGREGATE", pipeline_id, since, until),
            since=since,
            until=_end(until),
        )

    def window_fires(
        self, pipeline_id: str | None, since: int, until: int | None = None
    ) -> list[dict[str, Any]]:
        """Per pipeline (all when ``pipeline_id`` is None), window operator and window,
        the fires captured in [since, until) (one AGGREGATE event per key and subtask in
        Flink, per micro-batch in Spark): how many, records in, out and late, and when
        the first and last came."""
        return self._rows(
            f"""
            SELECT pipeline_id, operator_id, any_value(operator_type) AS operator_type,
                   window_start, window_end, count(*) AS fires,
                   sum(input_count) AS input_count, sum(output_count) AS output_count,
                   sum(late_count) AS late_count,
                   min(processing_time) AS first_fire, max(processing_time) AS last_fire
            FROM {{events}}
            WHERE {_FIRE}
              AND processing_time >= $since AND processing_time < $until
            GROUP BY pipeline_id, operator_id, window_start, window_end
            ORDER BY pipeline_id, operator_id, window_start, window_end
            """,
            self._files("AGGREGATE", pipeline_id, since, until),
            since=since,
            until=_end(until),
        )

    def late_set_aside(
        self, pipeline_id: str, operators: list[str], since: int, until: int | None = None
    ) -> list[dict[str, Any]]:
        """Per window operator of ``operators``, the late records counted beside its
        fires in [since, until): events without window bounds that count late records,
        as ``FaroFlink.late_trace`` sends for a window's late-data side output. Naming
        the operators lets row-group statistics skip every other operator's flushes
        (AGGREGATE files are sorted by operator)."""
        if not operators:
            return []
        return self._rows(
            f"""
            SELECT operator_id, sum(input_count) AS input_count, sum(late_count) AS late_count
            FROM {{events}}
            WHERE list_contains($operators, operator_id) AND late_count IS NOT NULL
              AND NOT coalesce({_FIRE}, false)
              AND processing_time >= $since AND processing_time < $until
            GROUP BY operator_id
            """,
            self._files("AGGREGATE", pipeline_id, since, until),
            operators=operators,
            since=since,
            until=_end(until),
        )

    def fire_delays(
        self, pipeline_id: str, since: int, until: int | None = None
    ) -> list[dict[str, Any]]:
        """Per window operator, how long after its window's end each fire in [since,
        until) was captured (ms): 50th and 95th percentiles (interpolated) and the
        maximum, over every fire."""
        return self._rows(
            f"""
            SELECT operator_id,
                   quantile_cont(processing_time - window_end, [0.5, 0.95]) AS q,
                   max(processing_time - window_end) AS max
            FROM {{events}}
            WHERE {_FIRE}
              AND processing_time >= $since AND processing_time < $until
            GROUP BY operator_id ORDER BY operator_id
            """,
            self._files("AGGREGATE", pipeline_id, since, until),
            since=since,
            until=_end(until),
        )

    def entity_values(
        self, feature: str, pipeline_id: str, entity_id: str, since: int, until: int | None = None
    ) -> list[dict[str, Any]]:
        """The entity's values, with the typed value columns (long, boolean, string,
        vector) only when a row's ``value_type`` is not SCALAR_DOUBLE: a double is
        exact in ``feature_value``, and the four mostly-null columns cost a lookup
        about a fifth of its time.

        Ordered by every column, time first: rows equal in all of them are the only
        ties, so the order is fixed without reading event ids just to break ties
        (unique strings: the costliest column of a lookup).
        """
        files = self._holding(entity_id, self._files("ENTITY", pipeline_id, since, until))
        params = {"feature": feature, "entity": entity_id, "since": since, "until": _end(until)}
        return self._values(_ENTITY_VALUES, files, params)

    def entity_value_as_of(
        self,
        entity_id: str,
        at: int,
        *,
        by: Literal["processing", "event"],
        known: int,
        since: int,
        pipeline_id: str | None = None,
        feature: str | None = None,
    ) -> list[dict[str, Any]]:
        """Per pipeline, feature and operator (one pipeline's or one feature's when
        given), the entity's value at ``at`` on one of two time axes.

        ``by="processing"``: the last value processed at or before ``at``, which is
        what the pipeline held then. ``by="event"``: the value of the latest event
        time at or before ``at``, as known at processing time ``known``: a value that
        a late record corrected after ``known`` is answered as it was before the
        correction. Only values whose times fall on or after ``since`` count, which
        bounds the files read.
        """
        axis = "processing_time" if by == "processing" else "event_time"
        files = self._holding(entity_id, self._files("ENTITY", pipeline_id, since, known))
        params: dict[str, Any] = {"entity": entity_id, "at": at, "known": known, "since": since}
        scope = "feature_name IS NOT NULL"
        if feature is not None:
            scope, params["feature"] = "feature_name = $feature", feature
        sql = _AS_OF.replace("{axis}", axis).replace("{feature}", scope)
        return self._values(sql, files, params)

    def entity_values_as_of_many(
        self,
        lookups: list[tuple[str, int, int, int]],
        *,
        by: Literal["processing", "event"],
        pipeline_id: str | None = None,
        features: list[str] | None = None,
    ) -> list[list[dict[str, Any]]]:
        """:meth:`entity_value_as_of` for each ``(entity_id, at, known, since)``, in one
        query (a range join of the lookups with the events): one list of rows per
        lookup, in their order. ``features``: only these (default: every feature)."""
        if not lookups:
            return []
        entities, ats, knowns, sinces = (list(c) for c in zip(*lookups, strict=True))
        params: dict[str, Any] = {}
        scope = "feature_name IS NOT NULL"
        if features is not None:
            scope, params["features"] = "list_contains($features, feature_name)", features
        axis = "processing_time" if by == "processing" else "event_time"
        sql = _AS_OF_MANY.replace("{axis}", axis).replace("{feature}", scope)
        columns = {"lookup_entity": entities, "lookup_at": ats, "lookup_known": knowns,
                   "lookup_since": sinces}  # fmt: skip
        return self._per_lookup(sql, columns, pipeline_id, min(sinces), max(knowns), params)

    def sample_rates(
        self, pipeline_id: str, feature: str, since: int | None = None, until: int | None = None
    ) -> dict[str, float]:
        """Per operator, the largest sample rate its ENTITY events of ``feature`` carry,
        processed in [since, until] (default: all of them)."""
        return {
            r["operator_id"]: r["rate"]
            for r in self._rows(
                """
                SELECT operator_id, max(sample_rate) AS rate FROM {events}
                WHERE feature_name = $feature AND sample_rate IS NOT NULL
                  AND processing_time BETWEEN $since AND $until
                GROUP BY operator_id
                """,
                self._files("ENTITY", pipeline_id, since, until),
                feature=feature,
                since=0 if since is None else since,
                until=_end(until),
            )
        }

    def entity_histories_many(
        self,
        lookups: list[tuple[str, str, int, int]],
        *,
        pipeline_id: str,
        feature: str,
    ) -> list[list[dict[str, Any]]]:
        """For each ``(entity_id, operator_id, since, until)``, the values of ``feature``
        that operator processed for the entity in [since, until], newest first (ties in
        the order of :meth:`entity_value_as_of`): one list per lookup, in their order."""
        if not lookups:
            return []
        entities, operators, sinces, untils = (list(c) for c in zip(*lookups, strict=True))
        columns = {"lookup_entity": entities, "lookup_operator": operators,
                   "lookup_since": sinces, "lookup_until": untils}  # fmt: skip
        return self._per_lookup(
            _HISTORIES, columns, pipeline_id, min(sinces), max(untils), {"feature": feature}
        )

    def compared_records(
        self,
        sides: tuple[tuple[str, str], tuple[str, str]],
        feature: str,
        since: int,
        until: int,
    ) -> tuple[pa.Table, tuple[int | None, int | None]]:
        """The values of ``feature`` that two operators (``a`` and ``b``, each a
        ``(pipeline_id, operator_id)``) captured for records with event times in
        [since, until), joined on the record (entity_id, event_time), in one query.

        Unordered. Columns: entity_id, event_time, and per side (``a_``, ``b_``) processing_time,
        value_type and feature_value (null on the side that has no such record), with
        the typed value columns when some value is not a double. A record one operator
        processed more than once (a window that fired again for a late record) counts
        with its value processed last. Also each side's latest event time from
        ``since`` on, in the window or after it: how far that operator has got.
        Files are chosen by processing time from ``since`` on.
        """
        source, params = self._sides("ENTITY", sides, since)
        params.update(feature=feature, since=since, until=until)
        where = "feature_name = $feature AND operator_id = $operator_{side}"
        where += " AND event_time >= $since"
        side_sql = f"""
            {{side}} AS (
                SELECT entity_id, event_time, processing_time, value_type, feature_value
                       {{typed}}
                FROM {{source}} WHERE {where} AND event_time < $until
                QUALIFY row_number() OVER (
                    PARTITION BY entity_id, event_time ORDER BY {_NEWEST_FIRST}) = 1
            )
        """  # fmt: skip

        def run(typed: str) -> pa.Table:
            columns = typed.replace(",", " ").split()
            picked = ", ".join(
                f"{side}.{c} AS {side}_{c}"
                for side in "ab"
                for c in ["processing_time", "value_type", "feature_value", *columns]
            )
            sql = "WITH " + ", ".join(
                side_sql.format(side=side, typed=typed, source=source[side]) for side in "ab"
            ) + f"""
                SELECT coalesce(a.entity_id, b.entity_id) AS entity_id,
                       coalesce(a.event_time, b.event_time) AS event_time, {picked}
                FROM a FULL OUTER JOIN b
                  ON a.entity_id = b.entity_id AND a.event_time = b.event_time
            """  # fmt: skip
            return self._run(sql, params, lambda result: result.to_arrow_table(), _NO_FILES)

        table = run("")
        for side in "ab":
            types = table.column(f"{side}_value_type")
            if pc.any(pc.not_equal(types, "SCALAR_DOUBLE")).as_py():
                table = run(_TYPED)
                break
        return table, self._newest("event_time", source, where, params)

    def feature_window_operators(
        self, pipeline_id: str, feature: str, since: int | None = None
    ) -> list[str]:
        """The window operators (AGGREGATE events with window bounds) whose events list
        ``feature``, among the windows ending from ``since`` on (default: all)."""
        return [
            r["operator_id"]
            for r in self._rows(
                f"""
                SELECT DISTINCT operator_id FROM {{events}}
                WHERE list_contains(features, $feature) AND {_FIRE}
                  AND window_end >= $since
                ORDER BY operator_id
                """,
                self._files("AGGREGATE", pipeline_id, since),
                feature=feature,
                since=0 if since is None else since,
            )
        ]

    def compared_windows(
        self,
        sides: tuple[tuple[str, str], tuple[str, str]],
        feature: str,
        since: int,
        until: int,
    ) -> tuple[list[dict[str, Any]], tuple[int | None, int | None]]:
        """What two window operators (``a`` and ``b``, each a ``(pipeline_id,
        operator_id)``) reported for ``feature`` per window ending in [since, until),
        summed over keys and subtasks and joined on the window's bounds, in one query:
        records in and out, and the feature's value count, nulls, sum, min and max
        (null where the operator has no value statistics for it), ``a_``/``b_`` per
        side, null on a side without that window. Also each side's latest window end
        from ``since`` on: how far that operator has got. Files are chosen by
        processing time from ``since`` on (a window fires after it ends)."""
        source, params = self._sides("AGGREGATE", sides, since)
        params.update(feature=feature, since=since, until=until)
        where = (
            "operator_id = $operator_{side} AND list_contains(features, $feature) "
            f"AND {_FIRE} AND window_end >= $since"
        )
        side_sql = f"""
            {{side}} AS (
                SELECT window_start, window_end, sum(input_count) AS input_count,
                       sum(output_count) AS output_count, max(processing_time) AS last_fire,
                       sum(st.count) AS "values", sum(st.null_count) AS nulls,
                       sum(st.sum) AS "sum", min(st.min) AS "min", max(st.max) AS "max"
                FROM (SELECT *, list_filter(feature_stats, s -> s.name = $feature)[1] AS st
                      FROM {{source}} WHERE {where} AND window_end < $until)
                GROUP BY window_start, window_end
            )
        """  # fmt: skip
        measures = ("input_count", "output_count", "last_fire", "values", "nulls", "sum",
                    "min", "max")  # fmt: skip
        picked = ", ".join(f'{s}."{m}" AS {s}_{m}' for s in "ab" for m in measures)
        sql = "WITH " + ", ".join(
            side_sql.format(side=side, source=source[side]) for side in "ab"
        ) + f"""
            SELECT coalesce(a.window_start, b.window_start) AS window_start,
                   coalesce(a.window_end, b.window_end) AS window_end, {picked}
            FROM a FULL OUTER JOIN b
              ON a.window_start = b.window_start AND a.window_end = b.window_end
            ORDER BY window_end, window_start
        """  # fmt: skip
        windows = self._run(sql, params, _dicts, _NO_FILES)
        return windows, self._newest("window_end", source, where, params)

    def _sides(
        self, event_type: str, sides: tuple[tuple[str, str], tuple[str, str]], since: int
    ) -> tuple[dict[str, str], dict[str, Any]]:
        """For a comparison of two operators (``a`` and ``b``, each a ``(pipeline_id,
        operator_id)``): each side's relation of ``event_type`` events from ``since`` on
        (the table ``no_events`` for a pipeline with no files to read), and the
        parameters ``$files_a``, ``$operator_a`` and their ``b`` twins."""
        source: dict[str, str] = {}
        params: dict[str, Any] = {}
        for side, (pipeline_id, operator_id) in zip("ab", sides, strict=True):
            params[f"operator_{side}"] = operator_id
            source[side] = "no_events"
            files = self._files(event_type, pipeline_id, since)
            if files:
                params[f"files_{side}"] = files
                source[side] = f"read_parquet($files_{side}, hive_partitioning = false)"
        return source, params

    def _newest(
        self, column: str, source: dict[str, str], where: str, params: dict[str, Any]
    ) -> tuple[int | None, int | None]:
        """Each side's largest ``column`` where ``where`` (with ``{side}``) holds: how
        far that operator has got."""
        [(a, b)] = self._run(
            "SELECT " + ", ".join(
                f"(SELECT max({column}) FROM {source[side]} WHERE {where.format(side=side)})"
                for side in "ab"
            ),
            {k: v for k, v in params.items() if k != "until"},
            lambda result: result.fetchall(),
            _NO_FILES,
        )  # fmt: skip
        return a, b

    def _per_lookup(
        self,
        sql: str,
        columns: dict[str, list[Any]],
        pipeline_id: str | None,
        since: int,
        until: int,
        params: dict[str, Any],
    ) -> list[list[dict[str, Any]]]:
        """Runs ``sql``, which joins the table ``lookups`` (``columns`` and a ``lookup``
        number) with the ENTITY events of [since, until] of the entities in
        ``lookup_entity``: one list of rows per lookup, in their order."""
        n = len(columns["lookup_entity"])
        files = self._files("ENTITY", pipeline_id, since, until)
        if self.entities is not None:
            files = self.entities.files_of_any(sorted(set(columns["lookup_entity"])), files)
        table = pa.table({
            "lookup": pa.array(range(n), pa.int64()),
            **{name: pa.array(values, pa.string() if type(values[0]) is str else pa.int64())
               for name, values in columns.items()},
        })  # fmt: skip
        answers: list[list[dict[str, Any]]] = [[] for _ in range(n)]
        for row in self._values(sql, files, params, {"lookups": table}):
            answers[row.pop("lookup")].append(row)
        return answers

    def _values(
        self,
        sql: str,
        files: list[str],
        params: dict[str, Any],
        tables: dict[str, pa.Table] | None = None,
    ) -> list[dict[str, Any]]:
        """Runs an entity-value query (as :meth:`_rows`, with ``tables`` registered by
        name) whose ``{typed}`` stands for the typed value columns, which are read only
        when a row is not a double."""
        if not files:
            return []

        def run(typed: str) -> list[dict[str, Any]]:
            query = sql.replace("{typed}", typed)
            return self._run(query, {"files": files, **params}, _dicts, tables)

        rows = run("")
        if any(r["value_type"] != "SCALAR_DOUBLE" for r in rows):
            rows = run(_TYPED)
        return rows

    def entity_summary(
        self, feature: str, pipeline_id: str, since: int, until: int
    ) -> dict[str, Any]:
        """Count, nulls, min, max, mean, sample stddev and the 50th/95th/99th percentiles
        (interpolated, as DuckDB's ``quantile_cont``) of the ENTITY values in [since, until).

        Exact percentiles need every value, so the numeric values are summarized in
        numpy (a partial sort of a million values takes ~15-20 ms there, DuckDB's
        quantile aggregate ~70), taken from the value cache; counting nulls would read
        every typed value column, so counts come from the rollups when the window
        falls on minutes.
        """
        files = self._files("ENTITY", pipeline_id, since)
        params = {"feature": feature, "since": since, "until": until}
        if self._use_rollups(since, until):
            counts = self._rolled(
                "values",
                "SELECT sum(value_count) AS count, sum(nulls) AS nulls FROM rollup WHERE "
                + _ROLLUP_WINDOW,
                files,
                **params,
            )
        else:
            counts = self._rows(
                f"SELECT count(*) AS count, {{nulls}} AS nulls FROM {{events}} WHERE {_WINDOW}",
                files,
                **params,
            )
        summary: dict[str, Any] = {
            "count": int(counts[0]["count"] or 0) if counts else 0,
            "nulls": int(counts[0]["nulls"] or 0) if counts else 0,
            "min": None, "max": None, "mean": None, "stddev": None, "quantiles": None,
        }  # fmt: skip
        if not summary["count"]:
            return summary
        if self.values is not None:
            x = self.values.between(feature, files, since, until)
        else:
            x = (
                self._arrow(
                    f"SELECT feature_value FROM {{events}} WHERE {_WINDOW} "
                    "AND feature_value IS NOT NULL",
                    {"files": files, **params},
                )
                .column(0)
                .to_numpy()
            )
        if x.size:
            summary.update(
                min=float(x.min()), max=float(x.max()), mean=float(x.mean()),
                stddev=float(x.std(ddof=1)) if x.size > 1 else None,
                quantiles=_interpolated(x, (0.5, 0.95, 0.99)),
            )  # fmt: skip
        return summary

    def aggregate_summary(
        self, feature: str, pipeline_id: str, since: int, until: int
    ) -> dict[str, Any]:
        """Totals of the per-flush statistics of ``feature`` (no entity data needed)."""
        files = self._files("AGGREGATE", pipeline_id, since)
        params = {"feature": feature, "since": since, "until": until}
        if self._use_rollups(since, until):
            rows = self._rolled(
                "stats",
                f"""
                SELECT coalesce(sum(count), 0) AS count, coalesce(sum(nulls), 0) AS nulls,
                       sum("sum") AS sum, sum(sum_sq) AS sum_sq,
                       min("min") AS min, max("max") AS max
                FROM rollup
                WHERE {_ROLLUP_WINDOW}
                """,
                files,
                **params,
            )
        else:
            rows = self._rows(
                """
                SELECT coalesce(sum(s.count), 0) AS count,
                       coalesce(sum(s.null_count), 0) AS nulls,
                       sum(s.sum) AS sum, sum(s.sum_sq) AS sum_sq,
                       min(s.min) AS min, max(s.max) AS max
                FROM (SELECT unnest(feature_stats) AS s, processing_time FROM {events})
                WHERE s.name = $feature AND processing_time >= $since
                  AND processing_time < $until
                """,
                files,
                **params,
            )
        return rows[0] if rows else {"count": 0}

    def feature_flow(
        self, feature: str, pipeline_id: str, since: int, until: int, bucket_ms: int
    ) -> list[dict[str, Any]]:
        """Per time bucket, the AGGREGATE counts of operators that compute ``feature``;
        ``late_reports``: how many flushes counted late records (Flink windows never do)."""
        files = self._files("AGGREGATE", pipeline_id, since)
        params = {"feature": feature, "since": since, "until": until, "bucket": bucket_ms}
        if self._use_rollups(since, until, bucket_ms):
            return self._rolled(
                "flow",
                f"""
                SELECT CAST((minute - $since) // $bucket AS BIGINT) AS bucket,
                       coalesce(sum(input_count), 0) AS input_count,
                       coalesce(sum(output_count), 0) AS output_count,
                       coalesce(sum(late_count), 0) AS late_count,
                       coalesce(sum(late_reports), 0) AS late_reports,
                       sum(lag_count) AS flushes_with_watermark,
                       sum(lag_sum) / nullif(sum(lag_count), 0) AS watermark_lag_ms,
                       max(lag_max) AS max_watermark_lag_ms
                FROM rollup
                WHERE {_ROLLUP_WINDOW}
                GROUP BY bucket ORDER BY bucket
                """,
                files,
                **params,
            )
        return self._rows(
            f"""
            SELECT CAST((processing_time - $since) // $bucket AS BIGINT) AS bucket,
                   coalesce(sum(input_count), 0) AS input_count,
                   coalesce(sum(output_count), 0) AS output_count,
                   coalesce(sum(late_count), 0) AS late_count,
                   count(late_count) AS late_reports,
                   count({LAG}) AS flushes_with_watermark,
                   avg({LAG}) AS watermark_lag_ms,
                   max({LAG}) AS max_watermark_lag_ms
            FROM {{events}}
            WHERE list_contains(features, $feature)
              AND processing_time >= $since AND processing_time < $until
            GROUP BY bucket ORDER BY bucket
            """,
            files,
            **params,
        )

    def feature_entities(
        self,
        feature: str,
        pipeline_id: str,
        since: int,
        until: int,
        bucket_ms: int,
        distinct: bool = False,
    ) -> list[dict[str, Any]]:
        """Per time bucket, the ENTITY values of ``feature``: how many, how many null,
        and the count and sum of the numeric ones; with ``distinct``, also of how many
        entities (``entities``), which no rollup can answer: every value is read."""
        files = self._files("ENTITY", pipeline_id, since)
        params = {"feature": feature, "since": since, "until": until, "bucket": bucket_ms}
        if not distinct and self._use_rollups(since, until, bucket_ms):
            return self._rolled(
                "values",
                f"""
                SELECT CAST((minute - $since) // $bucket AS BIGINT) AS bucket,
                       sum(value_count) AS values, NULL AS entities, sum(nulls) AS nulls,
                       sum(numeric) AS numeric, sum(numeric_sum) AS numeric_sum
                FROM rollup
                WHERE {_ROLLUP_WINDOW}
                GROUP BY bucket ORDER BY bucket
                """,
                files,
                **params,
            )
        entities = "count(DISTINCT entity_id)" if distinct else "NULL"
        return self._rows(
            f"""
            SELECT CAST((processing_time - $since) // $bucket AS BIGINT) AS bucket,
                   count(*) AS values, {entities} AS entities,
                   {{nulls}} AS nulls,
                   count(feature_value) AS numeric, sum(feature_value) AS numeric_sum
            FROM {{events}} WHERE {_WINDOW}
            GROUP BY bucket ORDER BY bucket
            """,
            files,
            **params,
        )

    def trace(self, trace_id: str) -> list[dict[str, Any]]:
        files = self._files("ENTITY")
        if self.traces is None:
            return self._rows(_TRACE, files, trace=trace_id)
        # Only the rows the index names, file by file (DuckDB skips the other row groups).
        params: dict[str, Any] = {"trace": trace_id}
        reads = []
        for i, (file, rows) in enumerate(self.traces.rows_of(trace_id, files).items()):
            params[f"file{i}"], params[f"rows{i}"] = file, rows
            reads.append(
                f"SELECT * FROM read_parquet($file{i}, hive_partitioning = false, "
                f"file_row_number = true) WHERE file_row_number = ANY($rows{i})"
            )
        if not reads:
            return []
        return self._run(
            _TRACE.replace("{events}", f"({' UNION ALL '.join(reads)})"), params, _dicts
        )

    def lineage(self, entity_id: str) -> list[dict[str, Any]]:
        """Ordered by every column, as :meth:`entity_values` is."""
        return self._rows(
            """
            SELECT processing_time, pipeline_id, operator_id, feature_name, event_time,
                   trace_id, operator_type, feature_value
            FROM {events} WHERE entity_id = $entity
            ORDER BY ALL
            """,
            self._holding(entity_id, self._files("ENTITY")),
            entity=entity_id,
        )

    # Detection (faro.detect). Windows are counted back from ``at``: window k covers
    # processing times [at - (k+1)*w, at - k*w), so k = 0 is the window being judged.

    def operator_windows(self, at: int, w: int, keep: list[int]) -> list[dict[str, Any]]:
        """Per pipeline, operator and window k in ``keep``: counts in, out and late
        (null where no flush counted late records), flushes, mean watermark lag (ms)."""
        since = at - (max(keep) + 1) * w
        return self._rows(
            f"""
            SELECT pipeline_id, operator_id, k,
                   sum(input_count) AS input_count, sum(output_count) AS output_count,
                   sum(late_count) AS late_count,
                   count(*) AS flushes, avg({LAG}) AS watermark_lag_ms
            FROM (SELECT *, CAST(($at - 1 - processing_time) // $w AS BIGINT) AS k FROM {{events}}
                  WHERE processing_time >= $since AND processing_time < $at)
            WHERE list_contains($keep, k)
            GROUP BY ALL
            """,
            self._files("AGGREGATE", since=since),
            at=at,
            w=w,
            since=since,
            keep=keep,
        )

    def last_flushes(self, at: int, since: int) -> list[dict[str, Any]]:
        """Per pipeline, operator and subtask seen since ``since``: its last flush
        before ``at``."""
        return self._rows(
            """
            SELECT pipeline_id, operator_id, subtask_index, max(processing_time) AS last_flush
            FROM {events} WHERE processing_time >= $since AND processing_time < $at
            GROUP BY ALL
            """,
            self._files("AGGREGATE", since=since),
            at=at,
            since=since,
        )

    def feature_windows(self, at: int, w: int, windows: int) -> list[dict[str, Any]]:
        """Per pipeline, feature and window k < ``windows``: value count, nulls, sum and
        sum of squares, from AGGREGATE statistics (``source`` AGGREGATE) and from ENTITY
        values (``source`` ENTITY)."""
        since = at - windows * w
        params = {"at": at, "w": w, "since": since}
        from_stats = self._rows(
            """
            SELECT pipeline_id, s.name AS feature, 'AGGREGATE' AS source, k,
                   sum(s.count) AS count, sum(s.null_count) AS nulls,
                   sum(s.sum) AS sum, sum(s.sum_sq) AS sum_sq
            FROM (SELECT pipeline_id, unnest(feature_stats) AS s,
                         CAST(($at - 1 - processing_time) // $w AS BIGINT) AS k
                  FROM {events} WHERE processing_time >= $since AND processing_time < $at)
            GROUP BY ALL
            """,
            self._files("AGGREGATE", since=since),
            **params,
        )
        from_values = self._rows(
            """
            SELECT pipeline_id, feature_name AS feature, 'ENTITY' AS source,
                   CAST(($at - 1 - processing_time) // $w AS BIGINT) AS k,
                   count(*) AS count,
                   {nulls} AS nulls,
                   sum(feature_value) AS sum, sum(feature_value * feature_value) AS sum_sq
            FROM {events}
            WHERE processing_time >= $since AND processing_time < $at
            GROUP BY ALL
            """,
            self._files("ENTITY", since=since),
            **params,
        )
        return from_stats + from_values

    def entity_assertions(
        self, pipeline_id: str, feature: str, since: int, until: int, low: float, high: float
    ) -> dict[str, Any]:
        """ENTITY values of one feature in [since, until): how many, how many null, how
        many numeric ones below ``low`` or above ``high``."""
        rows = self._rows(
            """
            SELECT count(*) AS count,
                   {nulls} AS nulls,
                   count(*) FILTER (WHERE feature_value < $low) AS below,
                   count(*) FILTER (WHERE feature_value > $high) AS above,
                   min(feature_value) AS min, max(feature_value) AS max
            FROM {events}
            WHERE feature_name = $feature AND processing_time >= $since AND processing_time < $until
            """,
            self._files("ENTITY", pipeline_id, since),
            feature=feature,
            since=since,
            until=until,
            low=low,
            high=high,
        )
        return rows[0] if rows else {"count": 0}

    def value_bins(
        self, pipeline_id: str, feature: str, base: tuple[int, int], current: tuple[int, int]
    ) -> list[dict[str, Any]]:
        """Counts of ENTITY values per decile bin of the baseline period, for the
        baseline (``side`` 'base') and the current period ('current'): the input of a
        population stability index. No rows when the baseline has no values (a store
        younger than the baseline period): there are no bins to count in."""
        return self._rows(
            """
            WITH v AS (
                SELECT feature_value AS x,
                       CASE WHEN processing_time >= $c0 THEN 'current' ELSE 'base' END AS side
                FROM {events}
                WHERE feature_name = $feature AND feature_value IS NOT NULL
                  AND ((processing_time >= $b0 AND processing_time < $b1)
                       OR (processing_time >= $c0 AND processing_time < $c1))
            ),
            edges AS (
                SELECT quantile_cont(x, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]) AS e
                FROM v WHERE side = 'base'
            )
            SELECT side, len(list_filter(e, edge -> edge < x)) AS bin, count(*) AS count
            FROM v, edges WHERE e IS NOT NULL GROUP BY ALL ORDER BY side, bin
            """,
            self._files("ENTITY", pipeline_id, base[0]),
            feature=feature,
            b0=base[0],
            b1=base[1],
            c0=current[0],
            c1=current[1],
        )


def _end(until: int | None) -> int:
    """An exclusive upper bound on processing time: ``until``, or none (None)."""
    return TIME_HIGH if until is None else until


def _dicts(relation: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    names = [d[0] for d in relation.description]
    return [dict(zip(names, row, strict=True)) for row in relation.fetchall()]


def _interpolated(x: np.ndarray, qs: tuple[float, ...]) -> tuple[float, ...]:
    """Percentiles interpolated between the closest ranks (``quantile_cont``), from
    one partial sort that places only the ranks they need."""
    positions = [q * (x.size - 1) for q in qs]
    ranks = sorted({int(np.floor(p)) for p in positions} | {int(np.ceil(p)) for p in positions})
    placed = np.partition(x, ranks)
    out = []
    for p in positions:
        low, high = placed[int(np.floor(p))], placed[int(np.ceil(p))]
        out.append(float(low + (p - np.floor(p)) * (high - low)))
    return tuple(out)
