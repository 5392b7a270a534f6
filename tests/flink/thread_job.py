"""The adapter tests' chain of traced operators, run in PyFlink's thread mode, where
the functions run in an interpreter inside the JVM: a filter, a keyed function
with a broadcast stream of rules, a keyed process function with ENTITY capture
at rate 1.0, and a window that aggregates incrementally, at parallelism 2.
Each sink writes the events it got to a file of its own in OUT_DIR when it
closes (every subtask's sink lives in this one process); the window's results
go to OUT_DIR/outputs.json.

    python -m tests.flink.thread_job OUT_DIR
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

from pyflink.common import Configuration, Types
from pyflink.common.time import Time
from pyflink.datastream import StreamExecutionEnvironment
from pyflink.datastream.window import TumblingEventTimeWindows

from faro import FaroConfig, FaroFeatureConfig
from faro.flink import FaroFlink
from tests.flink.jobs import (
    ORDER_TYPE,
    WINDOW_MS,
    FileSink,
    MerchantTotals,
    PassByRules,
    PassThrough,
    RevenueAgg,
    collect,
    minimums,
    order_stream,
    orders,
    revenue_type,
    totals_type,
)

ORDERS = 600
RULES = 20
MIN_AMOUNT = 10


def main(out_dir: str) -> None:
    config = Configuration()
    config.set_string("python.execution-mode", "thread")
    env = StreamExecutionEnvironment.get_execution_environment(config)
    env.set_parallelism(2)
    env.set_python_executable(sys.executable)
    faro = FaroFlink("thread-job", functools.partial(FileSink, out_dir), flush_interval=3600)
    amount = FaroFeatureConfig(entity_key=lambda o: o[4], feature_value=lambda o: o[2])
    valid = order_stream(env, orders(ORDERS)).filter(
        faro.filter_trace(lambda o: o[2] >= MIN_AMOUNT, operator_id="valid-orders")
    )
    rules = order_stream(env, orders(RULES, seed=6)).broadcast(minimums())
    ruled = (
        valid.key_by(lambda o: o[0], key_type=Types.STRING())
        .connect(rules)
        .process(faro.broadcast_process_trace(PassByRules(), None, "rules"), ORDER_TYPE)
    )
    passed = ruled.key_by(lambda o: o[0], key_type=Types.STRING()).process(
        faro.process_trace(PassThrough(), FaroConfig(features={"amount": amount}), "pass"),
        ORDER_TYPE,
    )
    agg = faro.aggregate_trace(
        RevenueAgg(), FaroConfig(features=["order_count"]), "revenue-window",
        window_function=MerchantTotals(), accumulator_type=revenue_type(),
        event_time=lambda o: o[3],
    )  # fmt: skip
    totals = (
        passed.key_by(lambda o: o[0], key_type=Types.STRING())
        .window(TumblingEventTimeWindows.of(Time.milliseconds(WINDOW_MS)))
        .aggregate(*agg, output_type=totals_type())
    )
    (Path(out_dir) / "outputs.json").write_text(json.dumps(collect(totals)))


if __name__ == "__main__":
    main(sys.argv[1])
