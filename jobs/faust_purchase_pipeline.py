"""The purchase feature pipeline on Faust: each user's purchase amount per 7-day
tumbling window, kept in a table by an agent that FaroSensor reports with no
change to it. A task of the app first sends --records generated purchases
(event times an hour apart) to the input topic; the worker stops once the agent
has processed them all.

    python jobs/faust_purchase_pipeline.py --broker localhost:9092 --sink stdout
    python jobs/faust_purchase_pipeline.py --broker localhost:9092 \
        --sink async-kafka --bootstrap-servers localhost:9092
"""

from __future__ import annotations

import argparse
import os
import signal
import tempfile
import uuid
from datetime import timedelta
from typing import Any

import faust

from faro import FaroConfig, FaroFeatureConfig
from faro._dev.faust_app import local_app
from faro.faust import FaroSensor
from faro.sinks.select import add_sink_arguments, sink_factory_from_args

WEEK_S = 7 * 24 * 3600
START_S = 1_780_000_000  # the first purchase's event time (epoch seconds)


def purchase(i: int, users: int) -> dict[str, Any]:
    """The i-th generated purchase; its event time is ``START_S + 3600 * i``."""
    return {"user_id": f"user-{i * 2654435761 % users}", "amount": 1 + (i * 104729 % 20000) / 100}


def build_app(args: argparse.Namespace) -> faust.App:
    app = local_app(args.app_id, args.broker, args.datadir, args.partitions)
    # internal: Faust creates it, with as many partitions as the table's changelog
    purchases = app.topic(
        args.input_topic, key_serializer="raw", value_serializer="json",
        partitions=args.partitions, internal=True,
    )  # fmt: skip
    amounts = (
        app.Table("purchase_amount_7d", default=float)
        .tumbling(timedelta(seconds=WEEK_S), expires=timedelta(seconds=2 * WEEK_S))
        .relative_to_stream()
    )
    feature = FaroFeatureConfig(
        entity_key=lambda write: write.key[0],  # (user, (window start, window end))
        feature_value="value",
        sample_rate=args.sample_rate,
    )
    app.sensors.add(
        FaroSensor(
            args.pipeline_id,
            sink_factory_from_args(args),
            {"purchase_amount_7d": FaroConfig(features={"purchase_amount_7d": feature})},
            flush_interval=args.flush_interval,
        )
    )
    processed = 0

    @app.agent(purchases, name="rolling-amount")
    async def rolling_amount(stream: Any) -> None:
        nonlocal processed
        async for p in stream:  # keyed by user: a user's purchases share a partition
            amounts[p["user_id"]] += p["amount"]
            processed += 1
            if processed == args.records:
                print(f"processed {processed} purchases; stopping", flush=True)
                os.kill(os.getpid(), signal.SIGTERM)  # the worker stops, the sensor flushes

    @app.task
    async def generate() -> None:
        for i in range(args.records):
            p = purchase(i, args.users)
            await purchases.send(key=p["user_id"], value=p, timestamp=START_S + 3600 * i)

    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--broker", required=True, help="Faust's Kafka, as HOST:PORT")
    parser.add_argument("--pipeline-id", default="purchase-pipeline", help="default: %(default)s")
    parser.add_argument("--records", type=int, default=10_000, help="default: %(default)s")
    parser.add_argument("--users", type=int, default=100, help="default: %(default)s")
    parser.add_argument(
        "--sample-rate", type=float, default=0.1, help="share of users captured (default: 0.1)"
    )
    parser.add_argument(
        "--input-topic", default=None, help="purchases topic (default: a new one per run)"
    )
    parser.add_argument("--partitions", type=int, default=2, help="default: %(default)s")
    parser.add_argument(
        "--flush-interval", type=float, default=1.0, help="seconds (default: %(default)s)"
    )
    add_sink_arguments(parser)
    args = parser.parse_args(argv)
    run = uuid.uuid4().hex[:8]
    args.app_id = f"faro-purchase-pipeline-{run}"
    args.input_topic = args.input_topic or f"purchases-{run}"
    with tempfile.TemporaryDirectory(prefix="faro-faust-") as datadir:
        args.datadir = datadir
        # the stdout sink writes to this process's standard output, which Faust would
        # otherwise turn into log lines
        worker = faust.Worker(build_app(args), loglevel="warn", redirect_stdouts=False)
        worker.execute_from_commandline()


if __name__ == "__main__":
    main()
