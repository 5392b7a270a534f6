"""The order pipeline on Spark Structured Streaming: order count and revenue per
merchant in tumbling event-time windows, traced with FaroSpark.trace. Orders come
from Spark's built-in rate source; the job runs for --seconds and then stops
cleanly (the batch in progress finishes).

By default each micro-batch is aggregated on its own inside foreachBatch. With
--stateful the query keeps its windows across micro-batches and emits each one
once the watermark passes its end (append mode), as a streaming aggregation does;
then faro reports each micro-batch from the query's progress. Either way the
query itself ("orders") reports each micro-batch's rows read and watermark
(FaroSpark.trace_queries).

    python jobs/spark_order_pipeline.py --sink stdout --seconds 20
    python jobs/spark_order_pipeline.py --sink stdout --stateful --window-seconds 5
    python jobs/spark_order_pipeline.py --sink delta --path /tmp/faro/capture-events
    python jobs/spark_order_pipeline.py --sink async-kafka --bootstrap-servers HOST:PORT
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from faro import FaroConfig, OperatorType
from faro.sinks.select import add_sink_arguments, sink_factory_from_args
from faro.spark import FaroSpark, FaroStreamingListener

MERCHANTS = 7
log = logging.getLogger("spark_order_pipeline")


def arguments() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pipeline-id", default="order-pipeline", help="default: %(default)s")
    parser.add_argument("--seconds", type=float, default=30, help="run time (%(default)s)")
    parser.add_argument(
        "--rows-per-second", type=int, default=200, help="orders per second (%(default)s)"
    )
    parser.add_argument(
        "--window-seconds", type=int, default=10, help="tumbling window (%(default)s)"
    )
    parser.add_argument(
        "--trigger-seconds", type=float, default=2, help="micro-batch interval (%(default)s)"
    )
    parser.add_argument(
        "--watermark-seconds",
        type=int,
        default=10,
        help="how late an order may arrive: the watermark's delay (%(default)s)",
    )
    parser.add_argument(
        "--stateful",
        action="store_true",
        help="aggregate across micro-batches in a stateful query instead of per batch",
    )
    add_sink_arguments(parser)
    return parser


def orders(spark: SparkSession, rows_per_second: int, watermark_seconds: int) -> DataFrame:
    """The rate source's (timestamp, value) as orders: merchant, amount, event time."""
    return (
        spark.readStream.format("rate")
        .option("rowsPerSecond", rows_per_second)
        .load()
        .select(
            F.concat(F.lit("merchant-"), (F.col("value") % MERCHANTS).cast("string")).alias(
                "merchant_id"
            ),
            (F.lit(5.0) + (F.col("value") * 7919 % 9500) / 100).alias("amount"),
            F.col("timestamp").alias("event_time"),
        )
        .withWatermark("event_time", f"{watermark_seconds} seconds")
    )


def main(argv: list[str] | None = None) -> int:
    args = arguments().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("py4j").setLevel(logging.WARNING)
    spark = (
        SparkSession.builder.master("local[2]")
        .appName(args.pipeline_id)
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("WARN")
    listener = FaroStreamingListener()
    spark.streams.addListener(listener)
    faro = FaroSpark(args.pipeline_id, sink_factory_from_args(args)).with_streaming_context(
        event_time_col="event_time", window_col="window", listener=listener
    )
    faro.trace_queries("orders")  # the query itself, from its progress: rows read, watermark
    config = FaroConfig(features=["order_count", "revenue_7d"])
    window = f"{args.window_seconds} seconds"
    agg = faro.trace(
        "order-agg-window",
        OperatorType.AGG,
        config,
        lambda df: df.groupBy("merchant_id", F.window("event_time", window)).agg(
            F.count("*").alias("order_count"), F.round(F.sum("amount"), 2).alias("revenue_7d")
        ),
    )

    def process(batch_df: DataFrame, batch_id: int) -> None:
        summary = agg.apply(batch_df, batch_id)
        windows = summary.count()  # the job's own output: here, how many summaries
        log.info("batch %d: %d merchant windows", batch_id, windows)

    def written(summary: DataFrame, batch_id: int) -> None:
        log.info("batch %d: %d merchant windows closed", batch_id, summary.count())

    source = orders(spark, args.rows_per_second, args.watermark_seconds)
    if args.stateful:  # the trace observes the query's plan once; Spark reports each batch
        writer = agg.apply(source).writeStream.outputMode("append").foreachBatch(written)
    else:
        writer = source.writeStream.foreachBatch(process)
    query = (
        writer.trigger(processingTime=f"{args.trigger_seconds} seconds").queryName("orders").start()
    )
    deadline = time.monotonic() + args.seconds
    while query.isActive and time.monotonic() < deadline:
        time.sleep(0.5)
    while query.isActive and query.status["isTriggerActive"]:  # let the batch finish
        time.sleep(0.05)
    query.stop()
    faro.close()
    latest = listener.latest(str(query.id))
    if latest is not None:
        log.info(
            "stopped after batch %d; watermark %s; failures in capture: %d",
            latest.batch_id, latest.watermark, faro.failures.count,
        )  # fmt: skip
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
