import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from faro.core.avro_codec import decode_single_object, encode_single_object
from faro.core.drafts import EntityEventTemplate, build_draft
from faro.core.events import EventType, FeatureValueType, OperatorType
from faro.core.sampling import trace_id
from tests.strategies import VALUES, ids, longs, opt_longs

# the encoder writes short strings' lengths from a table and longer ones as it must
long_ids = st.text(st.characters(blacklist_categories=("Cs",)), min_size=250, max_size=300)
any_length_ids = ids | long_ids


@st.composite
def templates_and_fields(draw: st.DrawFn) -> tuple[EntityEventTemplate, tuple]:
    value_type = draw(st.sampled_from(FeatureValueType))
    event_id = draw(any_length_ids)
    template = EntityEventTemplate(
        lambda: event_id,  # both encodings of a draft must see the same id
        draw(ids),
        draw(ids),
        draw(st.sampled_from(OperatorType)),
        draw(st.integers(0, 2**31 - 1)),
        draw(st.lists(ids, max_size=3)),
        draw(ids),
        value_type,
        draw(st.floats(0, 1)),
    )
    value = draw(st.none() | VALUES[value_type])
    fields = (draw(any_length_ids), value, draw(opt_longs), draw(longs))
    return template, fields


@given(templates_and_fields())
@settings(max_examples=500)
def test_a_draft_encodes_to_the_bytes_of_the_event_it_builds(case) -> None:
    template, fields = case
    event = template.build(*fields)
    assert template.single_object(*fields) == encode_single_object(event)
    assert decode_single_object(template.single_object(*fields)) == event


def test_a_built_draft_is_the_entity_event_the_recorder_describes() -> None:
    counter = itertools.count(1)
    template = EntityEventTemplate(
        lambda: f"id-{next(counter)}", "pipe", "op", OperatorType.PROCESS, 3, ["amount"],
        "amount", FeatureValueType.SCALAR_DOUBLE, 0.5,
    )  # fmt: skip
    event = build_draft((template, "user-7", 12.5, 1_000, 2_000))
    assert event.event_type is EventType.ENTITY
    assert (event.event_id, event.entity_id, event.feature_value) == ("id-1", "user-7", 12.5)
    assert (event.event_time, event.processing_time, event.subtask_index) == (1_000, 2_000, 3)
    assert (event.feature_name, event.features, event.sample_rate) == ("amount", ["amount"], 0.5)
    assert event.trace_id == trace_id("pipe", "user-7", 1_000)
    # each draft takes the next id, whichever way it is delivered
    assert decode_single_object(template.single_object("user-7", 1.0, None, 0)).event_id == "id-2"


@given(st.lists(st.tuples(longs, st.integers(0, 3)), min_size=2, max_size=40))
@settings(max_examples=100)
def test_one_template_encodes_each_processing_time_it_is_given(times) -> None:
    # the encoder keeps the last processing time's bytes: repeats and changes, in any order
    template = EntityEventTemplate(
        lambda: "id", "pipe", "op", OperatorType.PROCESS, 0, ["amount"], "amount",
        FeatureValueType.SCALAR_DOUBLE, 1.0,
    )  # fmt: skip
    for processing_time, repeats in times:
        for _ in range(repeats + 1):
            fields = ("user-7", 1.5, 1_000, processing_time)
            assert template.single_object(*fields) == encode_single_object(template.build(*fields))
