"""What the demo jobs share: a rate-limited built-in generator and common options.

This module is pickled by value into the jobs' functions, so Python workers of
a standalone cluster run it without ``jobs/`` on their path.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any

import cloudpickle
from pyflink.common import WatermarkStrategy
from pyflink.common.time import Duration
from pyflink.common.typeinfo import TypeInformation
from pyflink.common.watermark_strategy import TimestampAssigner
from pyflink.datastream import DataStream, StreamExecutionEnvironment
from pyflink.datastream.connectors.base import Sink
from pyflink.datastream.connectors.number_seq import NumberSequenceSource
from pyflink.datastream.functions import MapFunction, RuntimeContext

from faro.sinks.select import add_sink_arguments

cloudpickle.register_pickle_by_value(sys.modules[__name__])


def job_arguments(description: str, pipeline_id: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--pipeline-id", default=pipeline_id, help=f"default: {pipeline_id}")
    parser.add_argument(
        "--records", type=int, default=100_000, help="records to generate (default: 100000)"
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=0,
        help="records per second, 0 for as fast as possible (default: 0)",
    )
    parser.add_argument(
        "--window-seconds", type=int, default=300, help="tumbling event-time window (default: 300)"
    )
    parser.add_argument(
        "--parallelism", type=int, default=2, help="of the keyed operators (default: 2)"
    )
    parser.add_argument(
        "--print-output", action="store_true", help="print the job's own output records"
    )
    add_sink_arguments(parser)
    return parser


class _Generate(MapFunction):
    """Turns sequence numbers into records; paces them to ``rate`` per second.

    Event times start when the generator does and advance ``1000 / rate`` ms
    per record (1 ms when unpaced), so windows fill as the wall clock moves.
    Not when the job is built: the seconds a job takes to start would then
    show as watermark lag and window fire delay that a live source has not.

    With ``late_every`` N, every Nth record comes ``late_ms`` behind in event
    time, once the stream is that old (earlier, it would open windows before
    the stream's first, which would show as windows that never fired).
    """

    def __init__(
        self,
        make: Callable[[int, int], tuple[Any, ...]],
        rate: float,
        late_every: int = 0,
        late_ms: int = 0,
    ):
        self._make = make
        self._rate = rate
        self._step_ms = 1000.0 / rate if rate > 0 else 1.0
        self._late_every = late_every
        self._late_ms = late_ms

    def open(self, runtime_context: RuntimeContext) -> None:
        self._started = time.monotonic()
        self._start_ms = int(time.time() * 1000)

    def map(self, i: int) -> tuple[Any, ...]:
        if self._rate > 0:
            ahead = self._started + i / self._rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
        age = int(i * self._step_ms)
        if self._late_every and i % self._late_every == self._late_every - 1:
            if age >= self._late_ms:
                age -= self._late_ms
        return self._make(i, self._start_ms + age)


def late_ms(args: argparse.Namespace) -> int:
    """How far behind a late record comes: a whole window and 5 s more, so its
    window has fired whatever the watermark's delay through the job."""
    return (args.window_seconds + 5) * 1000


class _TimestampAt(TimestampAssigner):
    def __init__(self, index: int):
        self._index = index

    def extract_timestamp(self, value: Any, record_timestamp: int) -> int:
        return int(value[self._index])


def generated(
    env: StreamExecutionEnvironment,
    args: argparse.Namespace,
    make: Callable[[int, int], tuple[Any, ...]],
    type_info: TypeInformation,
    ts_index: int,
    late_every: int = 0,
) -> DataStream:
    """A single-reader generator (so pacing is exact), timestamped and watermarked;
    ``late_every``: see :class:`_Generate`."""
    strategy = WatermarkStrategy.for_bounded_out_of_orderness(
        Duration.of_seconds(1)
    ).with_timestamp_assigner(_TimestampAt(ts_index))
    return (
        env.from_source(
            NumberSequenceSource(0, args.records - 1),
            WatermarkStrategy.no_watermarks(),
            "generator",
        )
        .set_parallelism(1)
        .map(_Generate(make, args.rate, late_every, late_ms(args)), type_info)
        .set_parallelism(1)
        .assign_timestamps_and_watermarks(strategy)
    )


def environment(args: argparse.Namespace) -> StreamExecutionEnvironment:
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(args.parallelism)
    env.set_python_executable(sys.executable)
    return env


def finish(
    env: StreamExecutionEnvironment,
    args: argparse.Namespace,
    name: str,
    *outputs: DataStream,
) -> None:
    """Runs the job to the end of the generated input. Each output gets a sink: Flink
    leaves a branch without one out of the job."""
    for output in outputs:
        if args.print_output:
            output.print()
        else:
            output.sink_to(Sink("org.apache.flink.streaming.api.functions.sink.v2.DiscardingSink"))
    env.execute(name)
