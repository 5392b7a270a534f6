"""A local PyFlink job that ends its process as soon as ``execute()`` returns, as a
user's script does: two traced maps, chained, each sending its counts only when
it closes, to a sink that takes a while to deliver them.

    python -m tests.flink.exit_job OUT_FILE RECORDS
"""

from __future__ import annotations

import functools
import sys
import time

from pyflink.common import Types
from pyflink.datastream import StreamExecutionEnvironment

from faro import CaptureEvent
from faro.core.json_codec import to_json
from faro.flink import FaroFlink

DELIVERY_S = 0.5


class SlowFileSink:
    """Appends the events it got to a file when closed, ``DELIVERY_S`` later: a
    destination that takes that long to acknowledge them."""

    def __init__(self, path: str):
        self.path = path
        self.events: list[CaptureEvent] = []

    def emit(self, event: CaptureEvent) -> None:
        self.events.append(event)

    def flush(self, timeout: float | None = None) -> bool:
        return True

    def close(self) -> None:
        time.sleep(DELIVERY_S)
        with open(self.path, "a") as f:
            f.writelines(to_json(e) + "\n" for e in self.events)


def main(out: str, records: int) -> None:
    faro = FaroFlink("exit-job", functools.partial(SlowFileSink, out), flush_interval=3600)
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
