"""The user feature pipeline (ENTITY mode): each user's purchase amount per
tumbling event-time window, traced with faro.window_trace. Sampled users get
one ENTITY event per emitted feature value (default 10 % of users).

    python jobs/flink_user_features.py --sink stdout --records 10000 --sample-rate 1.0
    make submit JOB=jobs/flink_user_features.py \
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
from pyflink.datastream.functions import ProcessWindowFunction
from pyflink.datastream.window import TumblingEventTimeWindows

from faro import DataClassification, FaroConfig, FaroFeatureConfig, FeatureValueType
from faro.flink import FaroFlink
from faro.sinks.select import sink_factory_from_args

PURCHASE = Types.TUPLE([Types.STRING(), Types.DOUBLE(), Types.LONG()])  # user_id, amount, ts
FEATURES = Types.ROW_NAMED(
    ["user_id", "purchase_amount_7d", "purchase_count"],
    [Types.STRING(), Types.DOUBLE(), Types.LONG()],
)


def make_purchase(users: int) -> object:
    def make(i: int, ts: int) -> tuple[str, float, int]:
        return (f"user-{i * 2654435761 % users}", round(1 + (i * 104729 % 20000) / 100, 2), ts)

    return make


class RollingAmountFn(ProcessWindowFunction):
    def process(
        self, key: str, context: ProcessWindowFunction.Context, elements: Iterable
    ) -> Iterable[Row]:
        amounts = [amount for _user, amount, _ts in elements]
        yield Row(
            user_id=key, purchase_amount_7d=round(sum(amounts), 2), purchase_count=len(amounts)
        )


def main(argv: list[str] | None = None) -> None:
    parser = job_arguments(__doc__.split("\n\n")[0], "user-feature-pipeline")
    parser.add_argument("--users", type=int, default=1000, help="distinct users (default: 1000)")
    parser.add_argument(
        "--sample-rate", type=float, default=0.1, help="share of users captured (default: 0.1)"
    )
    args = parser.parse_args(argv)
    faro = FaroFlink(args.pipeline_id, sink_factory_from_args(args))
    config = FaroConfig(
        features={
            "purchase_amount_7d": FaroFeatureConfig(
                entity_key="user_id",
                feature_value="purchase_amount_7d",
                value_type=FeatureValueType.SCALAR_DOUBLE,
                classification=DataClassification.NON_PERSONAL,
                sample_rate=args.sample_rate,
                on="output",
            ),
            "purchase_count": FaroFeatureConfig(
                entity_key="user_id",
                feature_value="purchase_count",
                value_type=FeatureValueType.SCALAR_LONG,
                classification=DataClassification.PERSONAL,  # never leaves as entity data
                on="output",
            ),
        }
    )
    env = environment(args)
    output = (
        generated(env, args, make_purchase(args.users), PURCHASE, ts_index=2)
        .key_by(lambda e: e[0], key_type=Types.STRING())
        .window(TumblingEventTimeWindows.of(Time.seconds(args.window_seconds)))
        .process(
            faro.window_trace(
                RollingAmountFn(), config, "rolling-amount-window", event_time=lambda e: e[2]
            ),
            FEATURES,
        )
        .uid("rolling-amount-window")
    )
    finish(env, args, "faro user feature pipeline", output)


if __name__ == "__main__":
    main()
