"""Per-file, per-minute rollups of stored events, kept in memory by the query layer.

Feature health sums a feature's flow and values over a window, and a day of
a busy feature is millions of rows. Those sums merge, and a store file never
changes under its name (:mod:`faro.store.filecache`), so each file is rolled
up once, per feature and minute of processing time, at the first request
that needs it; later requests merge the small rollups of the files in their
window.

Only what merges exactly is here (counts, sums, minima, maxima); distinct
counts and percentiles are answered from the events themselves.
"""

from __future__ import annotations

from typing import Literal

import pyarrow as pa

from faro.core.events import TIME_HIGH, TIME_LOW
from faro.store.filecache import FileCache, Query, per_file

MINUTE_MS = 60_000

REAL_TIME = f"BETWEEN {TIME_LOW} AND {TIME_HIGH}"
"""SQL: a value that is a time (:data:`faro.core.events.TIME_LOW` and ``TIME_HIGH``);
arithmetic on the engines' Long.MIN/MAX sentinels would overflow a BIGINT."""
LAG = f"CASE WHEN watermark {REAL_TIME} THEN processing_time - watermark END"
"""SQL: a flush's watermark lag (ms), null when it carried no real watermark."""

Kind = Literal["flow", "values", "stats"]

_MINUTE = f"processing_time // {MINUTE_MS} * {MINUTE_MS}"
_SQL: dict[Kind, str] = {
    # AGGREGATE flushes, per feature they compute: records in and out, late ones (and
    # how many flushes counted them at all), and the watermark lag of the flushes that
    # carried a watermark.
    "flow": f"""
        SELECT file_index, feature, minute,
               sum(input_count)::BIGINT AS input_count,
               sum(output_count)::BIGINT AS output_count,
               sum(late_count)::BIGINT AS late_count, count(late_count) AS late_reports,
               count(lag) AS lag_count, sum(lag)::DOUBLE AS lag_sum, max(lag) AS lag_max
        FROM (SELECT file_index, unnest(list_distinct(features)) AS feature,
                     {_MINUTE} AS minute, input_count, output_count, late_count,
                     {LAG} AS lag
              FROM {{events}})
        GROUP BY ALL
    """,
    # ENTITY values: how many, how many null, and the count and sum of numeric ones.
    "values": f"""
        SELECT file_index, feature_name AS feature, {_MINUTE} AS minute,
               count(*) AS value_count, {{nulls}} AS nulls,
               count(feature_value) AS numeric, sum(feature_value) AS numeric_sum
        FROM {{events}}
        WHERE feature_name IS NOT NULL
        GROUP BY ALL
    """,
    # AGGREGATE per-flush value statistics (features whose entity data is suppressed).
    "stats": f"""
        SELECT file_index, s.name AS feature, minute,
               sum(s.count)::BIGINT AS count, sum(s.null_count)::BIGINT AS nulls, sum(s.sum) AS sum,
               sum(s.sum_sq) AS sum_sq, min(s.min) AS min, max(s.max) AS max
        FROM (SELECT file_index, unnest(feature_stats) AS s, {_MINUTE} AS minute FROM {{events}})
        GROUP BY ALL
    """,
}


def next_minute(t: int) -> int:
    """The first minute boundary at or after ``t`` (epoch ms): where windows that
    rollups can answer end."""
    return -(-t // MINUTE_MS) * MINUTE_MS


def aligned(*times: int) -> bool:
    """Whether every bound falls on a minute, so that minute rollups answer exactly."""
    return all(t % MINUTE_MS == 0 for t in times)


class RollupCache:
    """Thread-safe; holds at most ``max_rows`` rollup rows (``files``), least recently
    used out first. ``query`` runs the rollup SQL (its ``{nulls}`` is the raw queries'
    own, so both agree on what null means).
    """

    def __init__(self, query: Query, max_rows: int = 2_000_000) -> None:
        self._query = query
        self.files: FileCache[pa.Table] = FileCache(max_rows, lambda t: t.num_rows)

    def table(self, kind: Kind, files: list[str]) -> pa.Table:
        """The rollup rows of ``files`` (at least one; columns as in the ``kind`` query,
        without ``file_index``); files seen for the first time are rolled up now, in one
        query."""
        return pa.concat_tables(self.files.get(kind, files, lambda new: self._compute(kind, new)))

    def _compute(self, kind: Kind, files: list[str]) -> dict[str, pa.Table]:
        result = self._query(_SQL[kind] + " ORDER BY file_index", {"files": files})
        body = result.drop_columns(["file_index"])
        rows = per_file(files, result.column("file_index").to_numpy())
        return {f: body.slice(r.start, r.stop - r.start) for f, r in rows.items()}
