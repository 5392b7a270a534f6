from hypothesis import given

from faro.core.events import CaptureEvent, EventType, entity_event
from tests.strategies import capture_events


@given(capture_events().filter(lambda e: e.event_type is EventType.ENTITY))
def test_entity_event_equals_the_keyword_constructor(event: CaptureEvent) -> None:
    built = entity_event(
        event.event_id, event.pipeline_id, event.operator_id, event.operator_type,
        event.processing_time, event.subtask_index, event.features, event.entity_id,
        event.feature_name, event.feature_value, event.value_type, event.event_time,
        event.sample_rate, event.trace_id,
    )  # fmt: skip
    assert built == event
