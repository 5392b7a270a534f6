"""A local PyFlink job that ends its process as soon as ``execute()`` returns, as a
user's script does: two traced maps, chained, each sending its counts only when
it closes, to a sink that takes a while to deliver them.

    python -m tests.flink.exit_job OUT_DIR RECORDS
"""

from __future__ import annotations

import functools
import sys

from pyflink.common import Types
from pyflink.datastream import StreamExecutionEnvironment

from faro.flink import FaroFlink
from tests.flink.jobs import FileSink

DELIVERY_S = 0.5  # how long each sink takes to deliver its events when it closes


def main(out_dir: str, records: int) -> None:
    sink = functools.partial(FileSink, out_dir, DELIVERY_S)
    faro = FaroFlink("exit-job", sink, flush_interval=3600)
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(2)
    env.set_python_executable(sys.executable)
    (
        env.from_collection(list(range(records)), type_info=Types.LONG())
        .map(faro.map_trace(lambda v: v + 1, operator_id="first"), Types.LONG())
        .map(faro.map_trace(lambda v: v * 2, operator_id="second"), Types.LONG())
        .print()
    )
    env.execute("exit job")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
