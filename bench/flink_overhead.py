"""PyFlink throughput: the same job plain, AGGREGATE-traced, ENTITY-traced (rate 1.0,
async sink to Kafka) and with hand-written prometheus_client counters.

The job: a generator of purchases, keyed by user, into a KeyedProcessFunction
emitting each user's running total per record. Each variant runs on a fresh
local mini-cluster pipeline at parallelism 1; a local broker (tansu) receives
the capture events. Variants are interleaved over ``--repeat`` rounds, each
round starting one variant later. The plain job runs twice per round: each
variant's ratio is taken within its round, against the mean of that round's
two plain runs, and the median ratio over the rounds is printed with their
range. Pairing within a round keeps a change in the machine's load during
the run out of the ratios, and two plain runs halve the noise of the
baseline. The control, the second plain run over the first, shows how far
apart two identical jobs land. All of it twice: over the job's net runtime,
and in the steady state the user function times itself (after the first
tenth of the records, to the last), which leaves out job start-up and
shutdown. The wrapper's own per-record cost is also timed outside Flink,
where it is exact.

    python bench/flink_overhead.py [--records 300000] [--repeat 9] [--mode thread]
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter
from pyflink.common import Configuration, Row, Types, WatermarkStrategy
from pyflink.datastream import StreamExecutionEnvironment
from pyflink.datastream.connectors.base import Sink
from pyflink.datastream.connectors.number_seq import NumberSequenceSource
from pyflink.datastream.functions import KeyedProcessFunction, RuntimeContext

from faro import (
    AsyncCaptureEventSink,
    FaroConfig,
    FaroFeatureConfig,
    KafkaCaptureEventSink,
    StdoutCaptureEventSink,
)
from faro._dev.broker import LocalBroker
from faro._dev.environment import thread_mode_pythonpath
from faro.flink import FaroFlink

PURCHASE = Types.TUPLE([Types.STRING(), Types.DOUBLE()])
TOTAL = Types.ROW_NAMED(
    ["user_id", "amount", "rolling_amount"], [Types.STRING(), Types.DOUBLE(), Types.DOUBLE()]
)
DISCARD = "org.apache.flink.streaming.api.functions.sink.v2.DiscardingSink"


class RollingTotal(KeyedProcessFunction):
    """Each user's running total. Kept in a dict rather than Flink state: in
    PyFlink's process mode every state access is a round trip to the JVM, which
    would hide any instrumentation cost behind a slow baseline.

    With ``clock`` (a file path) it also times its own steady state, from the
    record after ``warmup`` to the last one, and writes ``records seconds`` there
    on close: job start-up (JVM tasks, the Python worker, imports, the sink's
    connection) and shutdown are then outside the measurement.
    """

    def __init__(self, clock: str | None = None, warmup: int = 0):
        self.clock = clock
        self.warmup = warmup

    def open(self, runtime_context: RuntimeContext) -> None:
        self.totals: dict[str, float] = {}
        self.seen = 0
        self.mark = self.last = 0.0

    def process_element(self, value: Any, ctx: KeyedProcessFunction.Context):
        self.seen += 1
        self.last = time.perf_counter()
        if self.seen == self.warmup:
            self.mark = self.last
        total = self.totals.get(value[0], 0.0) + value[1]
        self.totals[value[0]] = total
        yield Row(user_id=value[0], amount=value[1], rolling_amount=total)

    def close(self) -> None:
        if self.clock and self.seen > self.warmup:
            Path(self.clock).write_text(f"{self.seen - self.warmup} {self.last - self.mark}")


class PrometheusRollingTotal(RollingTotal):
    """What a user writes by hand today: counters inside the function."""

    def open(self, runtime_context: RuntimeContext) -> None:
        super().open(runtime_context)
        registry = CollectorRegistry()
        self.records_in = Counter("records_in", "records in", registry=registry)
        self.records_out = Counter("records_out", "records out", registry=registry)

    def process_element(self, value: Any, ctx: KeyedProcessFunction.Context):
        self.records_in.inc()
        for out in super().process_element(value, ctx):
            self.records_out.inc()
            yield out


def run(records: int, fn: KeyedProcessFunction, mode: str = "process") -> float:
    """Records per second of the job's net runtime (start-up and shutdown included)."""
    config = Configuration()
    config.set_string("python.execution-mode", mode)
    env = StreamExecutionEnvironment.get_execution_environment(config)
    env.set_parallelism(1)
    env.set_python_executable(sys.executable)
    (
        env.from_source(
            NumberSequenceSource(0, records - 1), WatermarkStrategy.no_watermarks(), "seq"
        )
        .map(lambda i: (f"user-{i * 2654435761 % 500}", float(i % 997)), PURCHASE)
        .key_by(lambda p: p[0], key_type=Types.STRING())
        .process(fn, TOTAL)
        .sink_to(Sink(DISCARD))
    )
    result = env.execute("faro overhead bench")
    return records / (result.get_net_runtime() / 1000.0)


def _keyed_context() -> Any:
    """The context PyFlink hands a KeyedProcessFunction, built from its own classes
    (the ones the wrapper reads directly), with a watermark and a timestamp set."""
    from pyflink.fn_execution.datastream.process.process_function import (
        InternalKeyedProcessFunctionContext,
    )
    from pyflink.fn_execution.datastream.process.timerservice_impl import (
        InternalTimerServiceImpl,
        TimerServiceImpl,
    )

    internal = InternalTimerServiceImpl(None)
    internal.advance_watermark(1_600_000_000_000)
    ctx = InternalKeyedProcessFunctionContext(TimerServiceImpl(internal))
    ctx.set_timestamp(1_700_000_000_000)
    return ctx


class _RuntimeContext:
    def get_index_of_this_subtask(self) -> int:
        return 0


def per_record_us(fn: KeyedProcessFunction, n: int = 200_000) -> float:
    """A function's own cost per record, outside Flink: what the wrapper adds, exactly."""
    fn.open(_RuntimeContext())
    ctx, record = _keyed_context(), ("user-1", 3.0)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(n):
            for _out in fn.process_element(record, ctx):
                pass
        best = min(best, time.perf_counter() - start)
    return best / n * 1e6


def median_interval(values: list[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """An interval that holds the true median ratio with at least ``confidence``,
    and its exact coverage: order statistics, no assumption about the spread.

    A round's ratio falls below the true median with probability 1/2, so the
    k-th smallest and k-th largest of n rounds bound it with probability
    1 - 2 P(Binomial(n, 1/2) < k). This tells "on the line" apart from "met":
    a target inside the interval is neither shown met nor shown missed. With
    too few rounds for ``confidence``, the whole range is returned with the
    coverage it has.
    """
    ordered, n = sorted(values), len(values)

    def coverage(k: int) -> float:
        return 1 - 2 * sum(math.comb(n, i) for i in range(k)) / 2**n

    k = 1
    while k + 1 <= (n + 1) // 2 and coverage(k + 1) >= confidence:
        k += 1
    return ordered[k - 1], ordered[n - k], coverage(k)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=300_000)
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument(
        "--mode", choices=["process", "thread"], default="process",
        help="PyFlink's execution mode: Python worker processes (the default) or an "
        "interpreter inside the JVM",
    )  # fmt: skip
    args = parser.parse_args()
    if args.mode == "thread":
        os.environ["PYTHONPATH"] = thread_mode_pythonpath(str(Path(__file__).resolve().parents[1]))

    with LocalBroker() as broker, tempfile.TemporaryDirectory() as tmp:
        aggregate = FaroFlink(
            "bench",
            AsyncCaptureEventSink.wrap(
                KafkaCaptureEventSink.factory(broker.bootstrap_servers, "agg")
            ),
        )
        entity = FaroFlink(
            "bench",
            AsyncCaptureEventSink.wrap(
                KafkaCaptureEventSink.factory(broker.bootstrap_servers, "ent"), 100_000
            ),
        )
        entity_config = FaroConfig(
            features={
                "amount": FaroFeatureConfig(entity_key=lambda p: p[0], feature_value=lambda p: p[1])
            }
        )
        clock = Path(tmp) / "steady-state"
        warmup = args.records // 10

        def user() -> RollingTotal:
            return RollingTotal(str(clock), warmup)

        variants = {
            "plain": user,
            "AGGREGATE": lambda: aggregate.process_trace(
                user(), FaroConfig(features=["rolling_amount"]), "rolling-total"
            ),
            "ENTITY (rate 1.0)": lambda: entity.process_trace(
                user(), entity_config, "rolling-total"
            ),
            "prometheus_client": lambda: PrometheusRollingTotal(str(clock), warmup),
            "plain, again": user,  # the same job as plain: how far apart two equal runs land
        }
        run(20_000, RollingTotal(), args.mode)  # warm the JVM and the Python worker once
        rates: dict[str, list[float]] = {name: [] for name in variants}
        steady: dict[str, list[float]] = {name: [] for name in variants}
        names = list(variants)
        for round_ in range(args.repeat):
            # Each round starts one variant later, so no variant always runs in the same
            # place (the mini-cluster's JVM carries state from job to job).
            shift = round_ % len(names)
            for name in names[shift:] + names[:shift]:
                make = variants[name]
                clock.unlink(missing_ok=True)
                rates[name].append(run(args.records, make(), args.mode))
                records, seconds = clock.read_text().split()
                steady[name].append(int(records) / float(seconds))
            done = ", ".join(f"{name} {rates[name][-1]:,.0f}" for name in names)
            print(f"round {round_ + 1}/{args.repeat} (records/s, net): {done}", file=sys.stderr)

        stdout = FaroFlink("bench", StdoutCaptureEventSink.factory(), flush_interval=3600)
        isolated = {
            "plain": per_record_us(RollingTotal()),
            "AGGREGATE": per_record_us(
                stdout.process_trace(RollingTotal(), FaroConfig(features=["rolling_amount"]), "x")
            ),
        }

    py = f"{platform.python_implementation()} {platform.python_version()}"
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {py}")
    print(f"apache-flink {version('apache-flink')}, {args.mode} mode, parallelism 1")
    print(f"{args.records:,} records per run, {args.repeat} interleaved rounds: median")
    print("records/s, and the median of each round's ratio to its two plain runs [range],")
    print("with an interval that holds the true median at the confidence given")
    targets = {"AGGREGATE": ">= 0.97", "ENTITY (rate 1.0)": ">= 0.85"}
    for title, table in (
        ("net runtime of the job (start-up and shutdown included)", rates),
        (f"steady state inside the job (after the first {warmup:,} records)", steady),
    ):
        print(f"\n{title}")
        first, again = table["plain"], table["plain, again"]
        baseline = [(a + b) / 2 for a, b in zip(first, again, strict=True)]
        print(f"{'plain (both runs)':<20} {statistics.median(first + again):>8,.0f} records/s")
        for name, values in table.items():
            if name == "plain":
                continue
            # the control against the first plain run; everything else against both
            against = first if name == "plain, again" else baseline
            ratios = [v / b for v, b in zip(values, against, strict=True)]
            spread = f"[{min(ratios):.2f}-{max(ratios):.2f}]"
            low, high, coverage = median_interval(ratios)
            interval = f"median in {low:.3f}-{high:.3f} ({coverage:.0%})"
            target = f"  (target {targets[name]})" if name in targets else ""
            line = f"{statistics.median(values):>8,.0f} records/s  {statistics.median(ratios):.3f}"
            print(f"{name:<20} {line} {spread} {interval}{target}")
    added = isolated["AGGREGATE"] - isolated["plain"]
    in_job = 1e6 / statistics.median(steady["plain"] + steady["plain, again"])
    print(f"\nprocess_trace adds {added:.1f} us per record outside Flink; a plain record costs")
    print(f"{in_job:.0f} us inside the job, so AGGREGATE capture alone bounds the ratio at")
    print(f"{in_job / (in_job + added):.3f}")


if __name__ == "__main__":
    started = time.monotonic()
    main()
    print(f"took {time.monotonic() - started:.0f} s")
