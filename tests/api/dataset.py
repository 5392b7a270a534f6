"""A generated store whose answers the tests compute independently.

Times are relative to ``now`` so windows like 1h select known events.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from pathlib import Path

from faro import CaptureEvent, EventType, FeatureStats, FeatureValueType, OperatorType
from faro.store.columns import events_to_table
from faro.store.writer import EventWriter

MIN = 60_000
MISSING_WINDOW = 30  # minutes ago


@dataclass
class Dataset:
    now: int
    events: list[CaptureEvent] = field(default_factory=list)
    # raw values behind the AGGREGATE statistics of "revenue" (never entity data)
    revenue_values: dict[int, list[float | None]] = field(default_factory=dict)

    def aggregates(self, pipeline: str, operator: str) -> list[CaptureEvent]:
        return [
            e for e in self.events
            if e.event_type is EventType.AGGREGATE and e.pipeline_id == pipeline
            and e.operator_id == operator
        ]  # fmt: skip

    def features(self, pipeline: str) -> dict[str, bool]:
        """Each feature the pipeline's operators declare or its ENTITY events carry,
        by name, with whether any ENTITY event carries it."""
        declared = {
            f for e in self.events
            if e.pipeline_id == pipeline and e.event_type is EventType.AGGREGATE
            for f in e.features
        }  # fmt: skip
        valued = {e.feature_name for e in self.entities(pipeline_id=pipeline)}
        return {n: n in valued for n in sorted(declared | valued)}

    def entities(self, **match: object) -> list[CaptureEvent]:
        return [
            e for e in self.events
            if e.event_type is EventType.ENTITY
            and all(getattr(e, k) == v for k, v in match.items())
        ]  # fmt: skip


def generate(seed: int = 11) -> Dataset:
    rng = random.Random(seed)
    now = int(time.time() * 1000)
    ds = Dataset(now)
    n = 0

    def agg(pipeline: str, op: str, kind: OperatorType, t: int, **kw: object) -> CaptureEvent:
        nonlocal n
        n += 1
        return CaptureEvent(f"a{n}", EventType.AGGREGATE, pipeline, op, kind, t, **kw)  # type: ignore[arg-type]

    # order-pipeline: a window and a filter flushing every minute for 2 hours, two subtasks.
    # The window's fires close one-minute windows 5 s after their end; the window of
    # minute MISSING_WINDOW never fires.
    for minute in range(120, 0, -1):
        t = now - minute * MIN + 5_000
        for subtask in (0, 1):
            inputs = rng.randrange(50, 150)
            outputs = rng.randrange(1, 8)
            late = rng.randrange(0, 4)
            values = [None if rng.random() < 0.1 else rng.uniform(0, 100) for _ in range(outputs)]
            present = [v for v in values if v is not None]
            if minute != MISSING_WINDOW:
                ds.revenue_values[len(ds.events)] = values
                ds.events.append(agg(
                    "order-pipeline", "order-agg-window", OperatorType.WINDOW, t,
                    window_start=t - 5_000 - MIN, window_end=t - 5_000,
                    subtask_index=subtask, features=["order_count", "revenue"],
                    input_count=inputs, output_count=outputs, late_count=late,
                    watermark=t - 30_000 - subtask * 1000,
                    feature_stats=[FeatureStats(
                        "revenue", len(values), len(values) - len(present),
                        sum(present) if present else None,
                        sum(v * v for v in present) if present else None,
                        min(present) if present else None, max(present) if present else None,
                    )],
                ))  # fmt: skip
            filtered_in = rng.randrange(100, 200)
            ds.events.append(agg(
                "order-pipeline", "filter-big", OperatorType.FILTER, t, subtask_index=subtask,
                input_count=filtered_in, output_count=filtered_in // 3, late_count=0,
                watermark=t - 10_000,
            ))  # fmt: skip
    # an operator that went quiet 2 minutes ago (STALE) and one 10 minutes ago (SILENT)
    ds.events.append(agg("order-pipeline", "enrich", OperatorType.MAP, now - 2 * MIN,
                         input_count=10, output_count=10))  # fmt: skip
    ds.events.append(agg("order-pipeline", "dedupe", OperatorType.PROCESS, now - 10 * MIN,
                         input_count=10, output_count=9))  # fmt: skip

    # user-feature-pipeline and fraud-pipeline see the same users: ENTITY events
    for i in range(600):
        user = f"user-{i % 20}"
        t = now - rng.randrange(0, 90 * MIN)
        value = None if rng.random() < 0.05 else round(rng.uniform(0, 500), 2)
        trace = f"trace-{i}"
        for pipeline, op, delay in (("user-feature-pipeline", "rolling-amount", 0),
                                    ("fraud-pipeline", "score", 1500)):  # fmt: skip
            ds.events.append(CaptureEvent(
                f"e{i}-{pipeline}", EventType.ENTITY, pipeline, op, OperatorType.PROCESS,
                t + delay, features=["purchase_amount_7d"], entity_id=user,
                feature_name="purchase_amount_7d", feature_value=value,
                value_type=FeatureValueType.SCALAR_DOUBLE, event_time=t - 700,
                sample_rate=1.0, trace_id=trace,
            ))  # fmt: skip
    return ds


def seed(data_dir: Path, ds: Dataset) -> None:
    EventWriter(data_dir, "seed").write(events_to_table(ds.events))
