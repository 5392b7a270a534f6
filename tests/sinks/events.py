"""A realistic stream of events for sink tests: entities interleaved with flushes."""

from __future__ import annotations

from faro import CaptureEvent, EventType, FeatureStats, FeatureValueType, OperatorType


def mixed_events(n: int) -> list[CaptureEvent]:
    events = []
    for i in range(n):
        if i % 50 == 49:
            events.append(
                CaptureEvent(
                    f"agg-{i}",
                    EventType.AGGREGATE,
                    "order-pipeline",
                    "order-agg-window",
                    OperatorType.WINDOW,
                    1_700_000_000_000 + i,
                    subtask_index=i % 2,
                    features=["order_count"],
                    input_count=i,
                    output_count=i // 2,
                    late_count=1,
                    watermark=1_700_000_000_000,
                    window_start=0,
                    window_end=300_000,
                    feature_stats=[FeatureStats("order_count", 3, 1, 6.0, 14.0, 1.0, 3.0)],
                )
            )
        else:
            events.append(
                CaptureEvent(
                    f"ent-{i}",
                    EventType.ENTITY,
                    "user-feature-pipeline",
                    "rolling-amount-window",
                    OperatorType.WINDOW,
                    1_700_000_000_000 + i,
                    features=["purchase_amount_7d"],
                    entity_id=f"user-{i % 37}",
                    feature_name="purchase_amount_7d",
                    feature_value=float(i) / 3,
                    value_type=FeatureValueType.SCALAR_DOUBLE,
                    event_time=1_699_999_999_000 + i,
                    sample_rate=1.0,
                    trace_id=f"t{i}",
                )
            )
    return events
