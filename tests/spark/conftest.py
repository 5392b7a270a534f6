"""Real Spark ``local[2]``, one session for the whole run, and a file stream whose
micro-batches the tests know row by row."""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import DoubleType, StringType, StructField, StructType, TimestampType

SCHEMA = StructType(
    [
        StructField("user_id", StringType()),
        StructField("amount", DoubleType()),
        StructField("event_time", TimestampType()),
    ]
)


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    # Python workers must run this interpreter (the one with faro's dependencies).
    os.environ["PYSPARK_PYTHON"] = sys.executable
    session = (
        SparkSession.builder.master("local[2]")
        .appName("faro-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.pyspark.python", sys.executable)
        .config("spark.pyspark.driver.python", sys.executable)
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


Batch = list[tuple[str, float | None, int]]
"""(user_id, amount, event time in epoch ms) rows of one micro-batch."""


def write_batches(directory: Path, batches: list[Batch]) -> None:
    """One JSON-lines file per micro-batch, named so the file source reads them in order."""
    directory.mkdir(parents=True, exist_ok=True)
    for i, rows in enumerate(batches):
        lines = [json.dumps({"user_id": u, "amount": a, "event_time": _iso(t)}) for u, a, t in rows]
        path = directory / f"batch-{i:04d}.json"
        path.write_text("\n".join(lines) + "\n")
        os.utime(path, (1_700_000_000 + i, 1_700_000_000 + i))  # the source orders by mtime


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.timezone.utc).isoformat()


def stream(spark: SparkSession, directory: Path, delay: str) -> DataFrame:
    """The files as a stream, one file per micro-batch, with a watermark."""
    return (
        spark.readStream.schema(SCHEMA)
        .option("maxFilesPerTrigger", 1)
        .json(str(directory))
        .withWatermark("event_time", delay)
    )
