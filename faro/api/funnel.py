"""A pipeline's operators as a funnel: how many records each stage took in and
passed on, so a loss shows where it happened, inside a stage or between two.

The store holds no topology (an operator's events do not name its upstream),
so the order of the stages is either the caller's (``order=``, which also picks
one path through a branching pipeline) or a stated guess from the operators'
kinds and volumes.
"""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException

from faro.api.models import FunnelStage
from faro.core.events import OperatorType

# Where an operator of each kind usually sits: sources first, then per-record
# operators, then windows, aggregations and joins, sinks last.
_PLACE = {
    OperatorType.SOURCE: 0,
    OperatorType.MAP: 1, OperatorType.FILTER: 1, OperatorType.FLAT_MAP: 1,
    OperatorType.PROCESS: 1,
    OperatorType.WINDOW: 2, OperatorType.AGG: 2, OperatorType.JOIN: 2,
    OperatorType.SINK: 3,
}  # fmt: skip


def guessed_order(rows: list[dict[str, Any]]) -> list[str]:
    """Operators by kind (see ``_PLACE``), and within a kind the one that took in
    more records first: a stage seldom sees more than the stages before it."""

    def place(row: dict[str, Any]) -> tuple[int, int, str]:
        kind = _PLACE.get(OperatorType(row["operator_type"]), 1)
        return kind, -(row["input_count"] or 0), row["operator_id"]

    return [r["operator_id"] for r in sorted(rows, key=place)]


def requested_order(order: str, known: list[str]) -> list[str]:
    """``order`` (comma-separated operator ids) checked against the pipeline's operators."""
    ids = [part.strip() for part in order.split(",") if part.strip()]
    if not ids:
        raise HTTPException(422, "order names no operator: give operator ids, comma-separated")
    unknown = [i for i in ids if i not in known]
    if unknown:
        raise HTTPException(
            422,
            f"order names operators this pipeline does not have: {', '.join(unknown)}. "
            f"Its operators: {', '.join(sorted(known))}",
        )
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise HTTPException(422, f"order names {', '.join(repeated)} more than once")
    return ids


def funnel_stages(rows: list[dict[str, Any]], order: list[str]) -> list[FunnelStage]:
    """The stages in ``order``; an operator that reported nothing in the window took
    in and passed on nothing."""
    by_id = {r["operator_id"]: r for r in rows}
    stages: list[FunnelStage] = []
    first_in: int | None = None
    previous_out: int | None = None
    for operator_id in order:
        row = by_id[operator_id]
        inputs, outputs = row["input_count"] or 0, row["output_count"] or 0
        if first_in is None:
            first_in = inputs
        stages.append(
            FunnelStage(
                operator_id=operator_id,
                operator_type=row["operator_type"],
                input_count=inputs,
                output_count=outputs,
                pass_rate=outputs / inputs if inputs else None,
                handoff_rate=inputs / previous_out if previous_out else None,
                survival=outputs / first_in if first_in else None,
            )
        )
        previous_out = outputs
    return stages
