"""PySpark adapter: ``FaroSpark.trace`` for transforms (inside ``foreachBatch``, or
on a streaming DataFrame), ``FaroSpark.trace_queries`` for whole queries, and
``FaroStreamingListener`` for the queries' progress."""

from faro.spark.listener import FaroStreamingListener, QueryProgress
from faro.spark.tracer import FaroSpark, SparkTrace

__all__ = ["FaroSpark", "FaroStreamingListener", "QueryProgress", "SparkTrace"]
