"""A store simulating 8 days of flushes of several pipelines, each with (at most) one
fault injected at a known time on the last day.

Every pipeline has one FILTER operator flushing once a minute (30 s into the
minute): Poisson input counts following a daily rhythm (peak 15:00, trough
03:00), 60 % passed on, and per-flush statistics of the feature ``amount``
(normal, mean 100, sd 10, 0.2 % null; never null in ``p-notnull``). Pipelines
``p-range`` and ``p-notnull`` also emit ENTITY values of ``amount`` (30 a
minute) on the last two days. ``p-subtask``'s operator has a second subtask
that takes a few records a minute (flushing 31 s into the minute) and stops during
its fault while the first goes on. ``p-late`` has 15 % of its input arrive behind
the watermark during its fault, none otherwise.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from faro import CaptureEvent, EventType, FeatureStats, FeatureValueType, OperatorType
from faro.store.columns import events_to_table
from faro.store.writer import EventWriter

MIN = 60_000
HOUR = 60 * MIN
DAY = 24 * HOUR
DAYS = 8
START = int(dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc).timestamp() * 1000)
JUDGED_DAY = START + (DAYS - 1) * DAY
"""The day detection runs over; the 7 before it are history."""
OPERATOR = "enrich"
FEATURE = "amount"
MEAN, SD, CLEAN_NULLS = 100.0, 10.0, 0.002
ENTITIES_PER_MIN = 30


@dataclass(frozen=True)
class Fault:
    pipeline: str
    kind: str
    start: int  # epoch ms, on JUDGED_DAY
    end: int
    magnitude: float


def _at(hour: float) -> int:
    return JUDGED_DAY + int(hour * HOUR)


FAULTS = [
    Fault("p-silent", "silent", _at(10), _at(11), 0.0),
    Fault("p-drop", "output_drop", _at(14), _at(15), 0.8),
    Fault("p-null", "null_share", _at(16), _at(17), 0.3),
    Fault("p-mean", "mean_shift", _at(18), _at(19), 3.0),
    Fault("p-range", "out_of_range", _at(12), _at(12.5), 0.1),
    Fault("p-notnull", "entity_nulls", _at(20), _at(20.5), 0.03),
    Fault("p-night", "night_level", _at(3), _at(4), 0.6),
    Fault("p-subtask", "subtask_stop", _at(13), _at(14), 0.0),
    Fault("p-late", "late_share", _at(7), _at(8), 0.15),
]
CLEAN = "p-clean"
PIPELINES = [CLEAN, *(f.pipeline for f in FAULTS)]
ENTITY_PIPELINES = {"p-range", "p-notnull"}
RANGE = (0.0, 500.0)
THRESHOLDS_TOML = f"""
[detect]
window = "10m"

[pipelines.p-range.features.{FEATURE}]
min = {RANGE[0]}
max = {RANGE[1]}

[pipelines.p-notnull.features.{FEATURE}]
not_null = true
"""


def rate_per_min(t: int) -> float:
    """Expected input records a minute at time ``t``: 200 at 15:00, 20 at 03:00."""
    hour = (t % DAY) / HOUR
    return 200 * (0.55 + 0.45 * math.cos(2 * math.pi * (hour - 15) / 24))


def fault_of(pipeline: str, t: int) -> Fault | None:
    for f in FAULTS:
        if f.pipeline == pipeline and f.start <= t < f.end:
            return f
    return None


def build(data_dir: Path, seed: int = 3) -> int:
    """Writes the store; returns how many events it holds."""
    rng = np.random.default_rng(seed)
    writer = EventWriter(data_dir, "simulation")
    total = 0
    for pipeline in PIPELINES:
        events: list[CaptureEvent] = []
        n = 0
        for minute in range(DAYS * 24 * 60):
            t0 = START + minute * MIN
            fault = fault_of(pipeline, t0)
            kind = fault.kind if fault else None
            if kind == "silent":
                continue
            rate = rate_per_min(t0)
            if kind == "night_level":
                rate = 200 * fault.magnitude  # type: ignore[union-attr]
            inputs = int(rng.poisson(rate))
            outputs = round(inputs * 0.6)
            late = round(inputs * fault.magnitude) if kind == "late_share" else 0  # type: ignore[union-attr]
            if kind == "output_drop":
                outputs = round(outputs * (1 - fault.magnitude))  # type: ignore[union-attr]
            null_share = fault.magnitude if kind == "null_share" else CLEAN_NULLS  # type: ignore[union-attr]
            if pipeline == "p-notnull" and kind is None:
                null_share = 0.0  # declared not_null: null only while the fault lasts
            mean = MEAN + (fault.magnitude * SD if kind == "mean_shift" else 0)  # type: ignore[union-attr]
            values = rng.normal(mean, SD, outputs)
            nulls = rng.random(outputs) < null_share
            entity_day = t0 >= JUDGED_DAY - DAY and pipeline in ENTITY_PIPELINES
            sampled: list[float | None] = []
            if entity_day:
                picked = rng.choice(outputs, size=min(ENTITIES_PER_MIN, outputs), replace=False)
                for i in picked:
                    value: float | None = None if nulls[i] else float(values[i])
                    if kind == "out_of_range" and rng.random() < fault.magnitude:  # type: ignore[union-attr]
                        value = -1.0
                    if kind == "entity_nulls" and rng.random() < fault.magnitude:  # type: ignore[union-attr]
                        value = None
                    sampled.append(value)
            kept = values[~nulls]
            n += 1
            aggregate = CaptureEvent(
                    f"{pipeline}-a{n}", EventType.AGGREGATE, pipeline, OPERATOR,
                    OperatorType.FILTER, t0 + 30_000, features=[FEATURE],
                    input_count=inputs, output_count=outputs, late_count=late,
                    watermark=t0 + 25_000,
                    feature_stats=[FeatureStats(
                        FEATURE, count=outputs, null_count=int(nulls.sum()),
                        sum=float(kept.sum()) if len(kept) else None,
                        sum_sq=float((kept * kept).sum()) if len(kept) else None,
                        min=float(kept.min()) if len(kept) else None,
                        max=float(kept.max()) if len(kept) else None,
                    )],
            )  # fmt: skip
            events.append(aggregate)
            if pipeline == "p-subtask" and kind != "subtask_stop":
                side = int(rng.poisson(5))
                n += 1
                events.append(CaptureEvent(
                    f"{pipeline}-a{n}", EventType.AGGREGATE, pipeline, OPERATOR,
                    OperatorType.FILTER, t0 + 31_000, subtask_index=1,
                    input_count=side, output_count=round(side * 0.6), late_count=0,
                    watermark=t0 + 25_000,
                ))  # fmt: skip
            for j, value in enumerate(sampled):
                n += 1
                entity = CaptureEvent(
                        f"{pipeline}-e{n}", EventType.ENTITY, pipeline, OPERATOR,
                        OperatorType.FILTER, t0 + 1000 + j * 1000, features=[FEATURE],
                        entity_id=f"u{minute % 500}-{j}", feature_name=FEATURE,
                        feature_value=value, value_type=FeatureValueType.SCALAR_DOUBLE,
                        event_time=t0 + j * 1000, sample_rate=1.0,
                )  # fmt: skip
                events.append(entity)
        writer.write(events_to_table(events), None, None)
        total += len(events)
    return total
