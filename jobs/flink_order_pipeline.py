"""The order pipeline (AGGREGATE mode): orders under the minimum amount are
dropped (faro.filter_trace), then order count and revenue per merchant are
summed in tumbling event-time windows (faro.window_trace). Some orders come
late (a till that was offline), after their window fired: Flink sets them
aside, and faro.late_trace counts them as the window's late records. No
entity data is captured: AGGREGATE events only, one per window fire and the
other operators' flushes, so /pipelines/order-pipeline/funnel shows both
stages and /pipelines/order-pipeline/windows the window's late rate.

    python jobs/flink_order_pipeline.py --sink stdout --records 10000
    make submit JOB=jobs/flink_order_pipeline.py \
        ARGS="--sink async-kafka --bootstrap-servers HOST:PORT"
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for _shared, also under `flink run -py`

from _shared import environment, finish, generated, job_arguments
from pyflink.common import Row, Types
from pyflink.common.time import Time
from pyflink.common.typeinfo import TypeInformation
from pyflink.datastream.functions import ProcessWindowFunction
from pyflink.datastream.output_tag import OutputTag
from pyflink.datastream.window import TumblingEventTimeWindows

from faro import FaroConfig
from faro.flink import FaroFlink
from faro.sinks.select import sink_factory_from_args

SUMMARY = Types.ROW_NAMED(
    ["merchant_id", "window_start", "order_count", "revenue_7d"],
    [Types.STRING(), Types.LONG(), Types.LONG(), Types.DOUBLE()],
)
MERCHANTS = 7
MIN_AMOUNT = 10.0  # smaller orders are the shop's test purchases: not revenue
LATE_EVERY = 50  # default of --late-every


def order_type() -> TypeInformation:
    """merchant_id, amount, ts. A new object each call: PyFlink 2.x cannot pickle a
    window's late-data tag whose type object the job already used."""
    return Types.TUPLE([Types.STRING(), Types.DOUBLE(), Types.LONG()])


def make_order(i: int, ts: int) -> tuple[str, float, int]:
    return (f"merchant-{i % MERCHANTS}", round(5 + (i * 7919 % 9500) / 100, 2), ts)


class OrderAggFn(ProcessWindowFunction):
    def process(
        self, key: str, context: ProcessWindowFunction.Context, elements: Iterable
    ) -> Iterable[Row]:
        amounts = [amount for _merchant, amount, _ts in elements]
        yield Row(
            merchant_id=key,
            window_start=context.window().start,
            order_count=len(amounts),
            revenue_7d=round(sum(amounts), 2),
        )


def main(argv: list[str] | None = None) -> None:
    parser = job_arguments(__doc__.split("\n\n")[0], "order-pipeline")
    parser.add_argument(
        "--late-every", type=int, default=LATE_EVERY, metavar="N",
        help="every Nth order comes a window and 5 s behind in event time, once the "
        f"stream is that old; 0 for none (default: {LATE_EVERY})",
    )  # fmt: skip
    args = parser.parse_args(argv)
    faro = FaroFlink(args.pipeline_id, sink_factory_from_args(args))
    config = FaroConfig(features=["order_count", "revenue_7d"])
    env = environment(args)
    agg = faro.window_trace(OrderAggFn(), config, "order-agg-window", event_time=lambda e: e[2])
    late = OutputTag("late-orders", order_type())
    output = (
        generated(env, args, make_order, order_type(), ts_index=2, late_every=args.late_every)
        .filter(faro.filter_trace(lambda e: e[1] >= MIN_AMOUNT, operator_id="valid-orders"))
        .key_by(lambda e: e[0], key_type=Types.STRING())
        .window(TumblingEventTimeWindows.of(Time.seconds(args.window_seconds)))
        .side_output_late_data(late)
        .process(agg, SUMMARY)
        .uid("order-agg-window")
    )
    late_orders = output.get_side_output(late).map(faro.late_trace(agg), order_type())
    finish(env, args, "faro order pipeline", output, late_orders)


if __name__ == "__main__":
    main()
