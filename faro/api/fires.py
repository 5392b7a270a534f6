"""What a pipeline's window operators' fires say: fire delay, late rate, recent
windows and the windows that never fired. One computation for
``/pipelines/{id}/windows`` and the window gauges of ``/metrics``.
"""

from __future__ import annotations

from typing import Any

from faro.api.models import FireDelay, WindowBounds, WindowFires, WindowOperator
from faro.detect.cadence import cadence
from faro.store.queries import StoreQueries

MISSING_LISTED = 100


def window_operators(
    queries: StoreQueries, pipeline_id: str, since: int, limit: int, until: int | None = None
) -> list[WindowOperator]:
    """Each window operator of the pipeline, over the fires captured in [since, until)
    (epoch ms; None: up to now), with its ``limit`` newest windows."""
    delays = {r["operator_id"]: r for r in queries.fire_delays(pipeline_id, since, until)}
    by_operator: dict[str, list[dict[str, Any]]] = {}
    for row in queries.window_fires(pipeline_id, since, until):
        by_operator.setdefault(row["operator_id"], []).append(row)
    # only where no fire counts late records (Flink) can late_trace have counted them beside
    blind = [op for op, rows in by_operator.items() if all(r["late_count"] is None for r in rows)]
    aside = {r["operator_id"]: r for r in queries.late_set_aside(pipeline_id, blind, since, until)}
    operators = []
    for operator_id, rows in by_operator.items():
        grid = cadence([(r["window_start"], r["window_end"]) for r in rows])
        counted = [r for r in rows if r["late_count"] is not None and r["input_count"]]
        late = sum(r["late_count"] for r in counted)
        late_in = sum(r["input_count"] for r in counted)
        if operator_id in aside:  # Flink: no fire sees them; late_trace counted them beside
            late = aside[operator_id]["late_count"]
            late_in = sum(r["input_count"] or 0 for r in rows) + aside[operator_id]["input_count"]
        delay = delays[operator_id]
        operators.append(
            WindowOperator(
                operator_id=operator_id,
                operator_type=rows[0]["operator_type"],
                windows=len(rows),
                fires=sum(r["fires"] for r in rows),
                window_length_ms=grid.length_ms,
                step_ms=grid.step_ms,
                fire_delay=FireDelay(
                    p50_seconds=delay["q"][0] / 1000,
                    p95_seconds=delay["q"][1] / 1000,
                    max_seconds=delay["max"] / 1000,
                ),
                late_rate=late / late_in if late_in else None,
                missing_count=None if grid.note else len(grid.missing),
                missing=[
                    WindowBounds(window_start=s, window_end=e)
                    for s, e in reversed(grid.missing[-MISSING_LISTED:])
                ],
                missing_note=grid.note,
                recent=[_fires(r) for r in reversed(rows[-limit:])],
            )
        )
    return operators


def _fires(row: dict[str, Any]) -> WindowFires:
    inputs, late = row["input_count"], row["late_count"]
    return WindowFires(
        window_start=row["window_start"],
        window_end=row["window_end"],
        fires=row["fires"],
        input_count=inputs,
        output_count=row["output_count"],
        late_count=late,
        late_rate=late / inputs if late is not None and inputs else None,
        first_fire=row["first_fire"],
        last_fire=row["last_fire"],
        fire_delay_seconds=(row["last_fire"] - row["window_end"]) / 1000,
    )
