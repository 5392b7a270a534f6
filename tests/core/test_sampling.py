import math

from faro import EventType, FaroConfig, FaroFeatureConfig, OperatorRecorder, OperatorType
from faro.core.sampling import is_sampled, trace_id
from tests.support import ListSink


def _recorder(pipeline: str, operator: str, rate: float, sink: ListSink) -> OperatorRecorder:
    spec = FaroFeatureConfig(entity_key="user", feature_value="amount", sample_rate=rate)
    config = FaroConfig(features={"amount": spec})
    return OperatorRecorder(pipeline, operator, OperatorType.MAP, config, sink)


def test_sampling_at_a_tenth_is_within_binomial_bounds_and_identical_across_recorders() -> None:
    n, rate = 100_000, 0.1
    a, b = ListSink(), ListSink()
    rec_a = _recorder("pipeline-a", "op-a", rate, a)
    rec_b = _recorder("pipeline-b", "op-b", rate, b)
    for i in range(n):
        record = {"user": f"user-{i}", "amount": i}
        rec_a.record_in(record, i)
        rec_b.record_in(record, i)
    kept_a = [e.entity_id for e in a.of_type(EventType.ENTITY)]
    kept_b = [e.entity_id for e in b.of_type(EventType.ENTITY)]
    sigma = math.sqrt(n * rate * (1 - rate))
    assert abs(len(kept_a) - n * rate) < 5 * sigma
    assert kept_a == kept_b
    assert all(e.sample_rate == rate for e in a.events)


def test_rates_zero_and_one_are_exact() -> None:
    keys = [f"k{i}" for i in range(1000)]
    assert all(is_sampled(k, 1.0) for k in keys)
    assert not any(is_sampled(k, 0.0) for k in keys)


def test_a_lower_rate_samples_a_subset_of_a_higher_rate() -> None:
    keys = [f"k{i}" for i in range(10_000)]
    low = {k for k in keys if is_sampled(k, 0.05)}
    high = {k for k in keys if is_sampled(k, 0.2)}
    assert low < high


def test_trace_id_is_shared_by_operators_and_distinct_per_record() -> None:
    assert trace_id("p", "u1", 5) == trace_id("p", "u1", 5)
    assert (
        len(
            {
                trace_id("p", "u1", 5),
                trace_id("p", "u1", 6),
                trace_id("p", "u2", 5),
                trace_id("q", "u1", 5),
            }
        )
        == 4
    )
