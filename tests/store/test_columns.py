import dataclasses

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from faro.core.events import CaptureEvent
from faro.store.columns import SCHEMA, events_to_table, invalid_rows, table_to_events
from tests.sinks.events import mixed_events
from tests.store.events import store_times
from tests.strategies import capture_events


@given(st.lists(capture_events(store_times), max_size=8))
@settings(max_examples=200)
def test_table_round_trip_is_lossless(events: list[CaptureEvent]) -> None:
    table = events_to_table(events)
    assert table.schema == SCHEMA
    assert table_to_events(table) == events


def test_invalid_rows_names_each_problem() -> None:
    events = mixed_events(4)
    events[1].processing_time = -5
    events[2].pipeline_id = ""
    events[3].pipeline_id = "p" * 81
    aggregate = next(e for e in mixed_events(200) if e.feature_stats)
    too_many = dataclasses.replace(aggregate, input_count=2**63 - 1)
    negative = dataclasses.replace(
        aggregate, feature_stats=[dataclasses.replace(aggregate.feature_stats[0], null_count=-1)]
    )
    table = events_to_table([*events, too_many, negative])
    problems = invalid_rows(table)
    assert set(problems) == {1, 2, 3, 4, 5}
    assert "input_count 9223372036854775807 is not a count" in problems[4]
    assert "feature_stats.null_count -1 is not a count" in problems[5]
    assert "longer than 80 bytes" in problems[3]
    assert "processing_time -5" in problems[1]
    assert "pipeline_id is empty" in problems[2]
    assert invalid_rows(events_to_table(mixed_events(10))) == {}
    assert invalid_rows(
        pa.table(
            {
                "processing_time": pa.array([None], pa.int64()),
                "event_id": ["e"],
                "pipeline_id": ["p"],
                "operator_id": ["o"],
            }
        )
    ) == {0: invalid_rows(events_to_table(events))[1].replace("-5", "None")}
