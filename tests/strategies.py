"""Hypothesis strategies producing every shape of CaptureEvent."""

from __future__ import annotations

from hypothesis import strategies as st

from faro.core.events import (
    CaptureEvent,
    EventType,
    FeatureStats,
    FeatureValueType,
    OperatorType,
)

text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
ids = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=20)
longs = st.integers(-(2**63), 2**63 - 1)
opt_longs = st.none() | longs
counts = st.integers(0, 2**40)  # what the store accepts (faro.store.columns.MAX_COUNT)
doubles = st.floats(allow_nan=False)

VALUES = {
    FeatureValueType.SCALAR_DOUBLE: doubles,
    FeatureValueType.SCALAR_LONG: longs,
    FeatureValueType.STRING: text,
    FeatureValueType.BOOLEAN: st.booleans(),
    FeatureValueType.VECTOR_DOUBLE: st.lists(doubles, max_size=5),
}

feature_stats = st.builds(
    FeatureStats,
    name=ids,
    count=counts,
    null_count=counts,
    sum=st.none() | doubles,
    sum_sq=st.none() | doubles,
    min=st.none() | doubles,
    max=st.none() | doubles,
)


@st.composite
def capture_events(
    draw: st.DrawFn, processing_times: st.SearchStrategy[int] = longs
) -> CaptureEvent:
    event_type = draw(st.sampled_from(EventType))
    common = dict(
        event_id=draw(ids),
        event_type=event_type,
        pipeline_id=draw(ids),
        operator_id=draw(ids),
        operator_type=draw(st.sampled_from(OperatorType)),
        processing_time=draw(processing_times),
        subtask_index=draw(st.integers(0, 2**31 - 1)),
        features=draw(st.lists(ids, max_size=4)),
    )
    if event_type is EventType.AGGREGATE:
        return CaptureEvent(
            **common,
            input_count=draw(st.none() | counts),
            output_count=draw(st.none() | counts),
            late_count=draw(st.none() | counts),
            watermark=draw(opt_longs),
            event_time_min=draw(opt_longs),
            event_time_max=draw(opt_longs),
            window_start=draw(opt_longs),
            window_end=draw(opt_longs),
            batch_id=draw(opt_longs),
            capture_drop_since_last=draw(st.booleans()),
            dropped_count=draw(counts),
            feature_stats=draw(st.lists(feature_stats, max_size=3)),
        )
    value_type = draw(st.sampled_from(FeatureValueType))
    return CaptureEvent(
        **common,
        entity_id=draw(ids),
        feature_name=draw(ids),
        feature_value=draw(st.none() | VALUES[value_type]),
        value_type=value_type,
        event_time=draw(opt_longs),
        sample_rate=draw(st.floats(0, 1)),
        trace_id=draw(st.none() | ids),
    )
