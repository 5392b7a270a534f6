"""Spark micro-batch time: the same foreachBatch transform plain and traced with
FaroSpark (AGGREGATE only, and with ENTITY capture of one input feature at a
10 % sample), in one run.

The stream: ``--batches`` Parquet files of ``--rows`` orders each, read one file
per micro-batch (``maxFilesPerTrigger=1``, ``availableNow``) with a watermark.
The transform: order count and revenue per merchant and 10-second window;
the job's own write is a ``noop`` save of the result. Timed: the foreachBatch
function, per batch (trace.apply and the write). The first batch of each query
(JIT and cache warm-up) is dropped; variants are interleaved over ``--repeat``
rounds, each round starting one variant later, and the median batch time per
variant is printed with its ratio to plain.
Captured events go to a Delta table under a temporary directory.

The same transform also runs as a stateful query, without foreachBatch: the
windows kept across micro-batches and written in append mode to ``noop``,
plain and with the trace applied to the streaming DataFrame. Timed: Spark's own
duration of each micro-batch (its progress's ``triggerExecution``).

    python bench/spark_overhead.py [--rows 200000] [--batches 8] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from faro import DeltaCaptureEventSink, FaroConfig, FaroFeatureConfig, OperatorType
from faro.spark import FaroSpark, FaroStreamingListener

T0 = 1_795_392_000_000


def write_source(directory: Path, batches: int, rows: int) -> None:
    directory.mkdir(parents=True)
    for b in range(batches):
        i = pa.array(range(b * rows, (b + 1) * rows), pa.int64())
        table = pa.table({
            "merchant_id": pc.cast(pc.bit_wise_and(i, 63), pa.string()),
            "user_id": pc.cast(pc.bit_wise_and(i, 65535), pa.string()),
            "amount": pc.divide(pc.cast(pc.bit_wise_and(i, 1023), pa.float64()), 10.0),
            "event_time": pc.cast(pc.add(i, T0), pa.timestamp("ms", "UTC")),
        })  # fmt: skip
        path = directory / f"part-{b:04d}.parquet"
        pq.write_table(table, path)
        os.utime(path, (1_700_000_000 + b, 1_700_000_000 + b))


def aggregate(df: DataFrame) -> DataFrame:
    return df.groupBy("merchant_id", F.window("event_time", "10 seconds")).agg(
        F.count("*").alias("order_count"), F.sum("amount").alias("revenue")
    )


def orders(spark: SparkSession, source: Path) -> DataFrame:
    schema = spark.read.parquet(str(source)).schema
    return (
        spark.readStream.schema(schema).option("maxFilesPerTrigger", 1).parquet(str(source))
        .withWatermark("event_time", "10 seconds")
    )  # fmt: skip


def capture(work: Path, listener: FaroStreamingListener) -> FaroSpark:
    """The traced variants' FaroSpark: events into a Delta table under ``work``."""
    return FaroSpark("bench", DeltaCaptureEventSink.factory(str(work / "events"))) \
        .with_streaming_context(event_time_col="event_time", window_col="window",
                                listener=listener)  # fmt: skip


def run_stateful(
    spark: SparkSession, source: Path, work: Path, variant: str, listener
) -> list[float]:
    """Micro-batch times of the stateful query, as Spark measured them."""
    faro = None
    out = aggregate(orders(spark, source))
    if variant == "stateful, traced":
        faro = capture(work, listener)
        config = FaroConfig(features=["order_count", "revenue"])
        out = faro.trace("agg", OperatorType.AGG, config, aggregate).apply(orders(spark, source))
    query = (
        out.writeStream.format("noop").outputMode("append").trigger(availableNow=True)
        .option("checkpointLocation", str(work / f"checkpoint-{time.time_ns()}"))
        .start()
    )  # fmt: skip
    query.awaitTermination()
    if faro is not None:
        faro.close()
    batches = sorted(query.recentProgress, key=lambda p: p.batchId)
    return [p.durationMs["triggerExecution"] / 1000 for p in batches][1:]


def run(spark: SparkSession, source: Path, work: Path, variant: str, listener) -> list[float]:
    if variant.startswith("stateful"):
        return run_stateful(spark, source, work, variant, listener)
    times: list[float] = []
    faro = None
    if variant != "plain":
        faro = capture(work, listener)
        features: dict = {"order_count": None, "revenue": None}
        if variant == "entity":
            features["amount"] = FaroFeatureConfig(
                entity_key="user_id", feature_value="amount", sample_rate=0.1
            )
        trace = faro.trace("agg", OperatorType.AGG, FaroConfig(features=features), aggregate)

    def process(batch_df: DataFrame, batch_id: int) -> None:
        start = time.perf_counter()
        out = aggregate(batch_df) if faro is None else trace.apply(batch_df, batch_id)
        out.write.format("noop").mode("overwrite").save()
        times.append(time.perf_counter() - start)

    query = (
        orders(spark, source).writeStream.foreachBatch(process).trigger(availableNow=True)
        .option("checkpointLocation", str(work / f"checkpoint-{variant}-{time.time_ns()}"))
        .start()
    )  # fmt: skip
    query.awaitTermination()
    if faro is not None:
        faro.close()
    return times[1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000, help="rows per micro-batch")
    parser.add_argument("--batches", type=int, default=8, help="micro-batches per query")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds")
    args = parser.parse_args()
    os.environ["PYSPARK_PYTHON"] = sys.executable
    spark = (
        SparkSession.builder.master("local[2]").appName("faro-bench")
        .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "2")
        .config("spark.sql.session.timeZone", "UTC").getOrCreate()
    )  # fmt: skip
    spark.sparkContext.setLogLevel("ERROR")
    listener = FaroStreamingListener()
    spark.streams.addListener(listener)
    variants = ("plain", "aggregate", "entity", "stateful", "stateful, traced")
    samples: dict[str, list[float]] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory(prefix="faro-spark-bench-") as tmp:
        source = Path(tmp) / "source"
        write_source(source, args.batches, args.rows)
        for r in range(args.repeat):
            # each round starts one variant later: the session's JVM carries state from
            # query to query, and a fixed order gives each variant the same place
            shift = r % len(variants)
            for v in variants[shift:] + variants[:shift]:
                samples[v] += run(spark, source, Path(tmp), v, listener)
            print(f"round {r + 1}/{args.repeat} done", file=sys.stderr)
    spark.stop()
    print(f"machine: {os.cpu_count()} cores, {platform.python_implementation()} "
          f"{platform.python_version()}, Spark local[2]; {args.rows} rows per batch")  # fmt: skip
    for v in variants:
        m = statistics.median(samples[v])
        plain = statistics.median(samples["stateful" if v.startswith("stateful") else "plain"])
        print(f"{v:>16}: median micro-batch {m * 1000:7.1f} ms  ratio to plain {m / plain:.3f} "
              f"({len(samples[v])} batches)")  # fmt: skip
    print(
        "target: traced <= 1.10 x plain (foreachBatch); stateful: against the plain "
        "stateful query, no target"
    )


if __name__ == "__main__":
    main()
