"""Development helpers for the tests, benchmarks, jobs and the demo: the local test
broker, the standalone Flink cluster, a Faust app for one local worker."""
