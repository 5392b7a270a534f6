"""An operator's parallel instances side by side: the one that stopped, the one
that takes most of the records, the one whose watermark holds event time back.

An operator's health is its newest flush, so it stays OK while one of its
subtasks has stopped (a stuck partition, a key that never arrives, an idle
source split). Its siblings are the baseline: subtasks of one operator see the
same clock and, in a window operator, fire for the same windows, so a subtask
far behind the others is the anomaly, whatever the operator's cadence.
"""

from __future__ import annotations

from itertools import groupby
from typing import Any

from faro.api.models import OperatorSubtasks, SubtaskFlow


def operator_subtasks(
    rows: list[dict[str, Any]], at: int, stale_after_s: float
) -> list[OperatorSubtasks]:
    """``rows``: :meth:`StoreQueries.subtasks`, ordered by operator; ``at``: the
    window's end (epoch ms)."""
    return [
        _operator(list(subtasks), at, stale_after_s)
        for _, subtasks in groupby(rows, key=lambda r: r["operator_id"])
    ]


def _operator(rows: list[dict[str, Any]], at: int, stale_after_s: float) -> OperatorSubtasks:
    newest = max(r["last_flush"] for r in rows)
    inputs = [r["input_count"] or 0 for r in rows]
    total = sum(inputs)
    detail = [
        SubtaskFlow(
            subtask_index=r["subtask_index"],
            last_flush=r["last_flush"],
            seconds_since_flush=(at - r["last_flush"]) / 1000,
            behind_seconds=(newest - r["last_flush"]) / 1000,
            watermark=r["watermark"],
            watermark_lag_seconds=None
            if r["watermark"] is None
            else (r["watermark_flush"] - r["watermark"]) / 1000,
            input_count=n,
            output_count=r["output_count"] or 0,
            late_count=r["late_count"],
            flushes=r["flushes"],
            input_share=n / total if total else None,
        )
        for r, n in zip(rows, inputs, strict=True)
    ]
    busiest = max(detail, key=lambda s: s.input_count)
    marks = [(s.watermark, s.subtask_index) for s in detail if s.watermark is not None]
    spread = (max(marks)[0] - min(marks)[0]) / 1000 if len(marks) > 1 else None
    return OperatorSubtasks(
        operator_id=rows[0]["operator_id"],
        operator_type=rows[0]["operator_type"],
        subtasks=len(detail),
        stalled=[s.subtask_index for s in detail if s.behind_seconds >= stale_after_s],
        input_skew=busiest.input_count * len(detail) / total if total and len(detail) > 1 else None,
        busiest_subtask=busiest.subtask_index if total else None,
        watermark_spread_seconds=spread,
        slowest_watermark_subtask=min(marks)[1] if len(marks) > 1 else None,
        detail=detail,
    )
