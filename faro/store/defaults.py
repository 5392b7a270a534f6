"""The materializer's defaults, in a module that imports nothing.

``faro --help`` shows them without loading the materializer, which pulls in
DuckDB, Arrow and librdkafka.
"""

GROUP = "faro-materializer"
BATCH_SIZE = 25_000
"""Events per stored batch; peak memory follows it (~2 MB per 1,000 events)."""
MAX_BATCH_SECONDS = 5.0
PROGRESS_INTERVAL_S = 10.0
