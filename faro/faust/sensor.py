"""FaroSensor: a Faust sensor that reports each agent's stream and each table as operators.

Faust calls a sensor for every event a stream takes in and lets go, and for every
write to a table, on the worker's event loop. The sensor turns those calls into
recorder calls, so capture needs no change to the agents: ``app.sensors.add(...)``
is all. It never raises into Faust: anything that fails is logged and counted.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, NamedTuple

from faust.sensors import Sensor
from faust.streams import current_event
from mode import Service

from faro.core.config import FaroConfig
from faro.core.events import OperatorType
from faro.core.failures import FailureLog
from faro.core.recorder import OperatorRecorder
from faro.core.sink import CaptureEventSink, SinkFactory, build_sink, check_factory

log = logging.getLogger("faro.faust")
_MAIN = "__main__."


class TableWrite(NamedTuple):
    """One ``table[key] = value``: the record a table operator's features read
    (``entity_key="key"``, ``feature_value="value"``). A windowed table's key is
    ``(key, (window start, window end))``."""

    key: Any
    value: Any


class FaroSensor(Sensor):
    """Reports one pipeline's agents and tables: ``app.sensors.add(FaroSensor(...))``.

    Each agent's stream is an operator named after the agent (PROCESS, Faust's
    name for it: ``@app.agent(name=...)`` sets it). Its inputs are the events the
    stream took in, its outputs the events it handed to the agent's body (what
    ``stream.filter`` and other processors let through), its event times the
    messages' timestamps, and its subtask index the stream's
    ``concurrency_index`` (an agent's ``concurrency=``). Each table written to is
    an operator named after the table (AGG): every write is an input and an
    output, read as a :class:`TableWrite`, at the time of the event being
    processed, with the partition it came from as the subtask index.

    ``configs`` maps operator ids (agent or table names) to the features to read:
    from an agent's event values, or from a table's writes. ``sink`` is a factory
    (``AsyncCaptureEventSink.wrap(...)`` keeps a slow destination off the event
    loop). Events are sent every ``flush_interval`` seconds for operators that saw
    traffic, and when the worker stops.
    """

    def __init__(
        self,
        pipeline_id: str,
        sink: SinkFactory,
        configs: Mapping[str, FaroConfig] | None = None,
        *,
        flush_interval: float = 10.0,
        **kwargs: Any,
    ):
        if not pipeline_id:
            raise ValueError("pipeline_id must be a non-empty string such as 'order-pipeline'")
        if flush_interval <= 0:
            raise ValueError(f"flush_interval is in seconds and must be > 0, got {flush_interval}")
        for name, config in (configs or {}).items():
            if not isinstance(config, FaroConfig):
                raise ValueError(
                    f"configs[{name!r}] must be a FaroConfig, got {type(config).__name__}"
                )
        super().__init__(**kwargs)
        self.pipeline_id = pipeline_id
        self.sink_factory = check_factory(sink)
        self.configs = dict(configs or {})
        self.flush_interval = flush_interval
        self.failures = FailureLog(f"faro pipeline {pipeline_id!r}", log)
        self._sink: CaptureEventSink | None = None
        self._recorders: dict[tuple[str, int], OperatorRecorder] = {}
        self._streams: dict[int, tuple[Any, OperatorRecorder]] = {}  # id(stream): (it, its)

    # -- Faust's callbacks -----------------------------------------------------------

    def on_stream_event_in(self, tp: Any, offset: int, stream: Any, event: Any) -> Any:
        try:
            # a stream lives as long as its agent: its recorder is looked up once, and
            # the stream is kept with it, so no other object can take its id
            pinned = self._streams.get(id(stream))
            if pinned is None:
                rec = self._recorder(
                    _agent_name(stream), OperatorType.PROCESS, stream.concurrency_index or 0
                )
                pinned = self._streams[id(stream)] = (stream, rec)
            ts = event.message.timestamp
            event_time = pinned[1].record_in(event.value, None if ts is None else int(ts * 1000))
            return (pinned[1], event_time, stream.events_total)
        except Exception as exc:
            self.failures.record("counting an event in failed", exc)
            return None

    def on_stream_event_out(
        self, tp: Any, offset: int, stream: Any, event: Any, state: Any = None
    ) -> None:
        if state is None:
            return
        try:
            rec, event_time, total = state
            if stream.events_total > total:  # the stream yielded it: not skipped
                rec.record_out(event.value, event_time)
        except Exception as exc:
            self.failures.record("counting an event out failed", exc)

    def on_table_set(self, table: Any, key: Any, value: Any) -> None:
        try:
            event = current_event()
            if event is None:
                partition, event_time = 0, None
            else:
                message = event.message
                ts = message.timestamp
                partition, event_time = message.partition, None if ts is None else int(ts * 1000)
            rec = self._recorders.get((table.name, partition)) or self._recorder(
                table.name, OperatorType.AGG, partition
            )
            write = TableWrite(key, value)
            rec.record_out(write, rec.record_in(write, event_time))
        except Exception as exc:
            self.failures.record(f"counting a write to table {table.name!r} failed", exc)

    # -- flushing ----------------------------------------------------------------------

    @Service.task
    async def _flush_periodically(self) -> None:
        while not self.should_stop:
            await self.sleep(self.flush_interval)
            self.flush()

    def flush(self) -> None:
        """One AGGREGATE event per operator instance that saw traffic since the last."""
        for rec in list(self._recorders.values()):
            if rec.pending:
                rec.flush()

    async def on_stop(self) -> None:
        self.flush()
        if self._sink is not None:
            try:
                self._sink.flush(5.0)
                self._sink.close()
            except Exception as exc:
                self.failures.record("closing the sink failed", exc)
            self._sink = None

    def _recorder(self, operator_id: str, kind: OperatorType, subtask: int) -> OperatorRecorder:
        rec = self._recorders.get((operator_id, subtask))
        if rec is None:
            if self._sink is None:
                self._sink = build_sink(self.sink_factory, self.failures)
            rec = self._recorders[(operator_id, subtask)] = OperatorRecorder(
                self.pipeline_id, operator_id, kind,
                self.configs.get(operator_id) or FaroConfig(), self._sink,
                subtask_index=subtask, observes_late=False,
            )  # fmt: skip
        return rec


def _agent_name(stream: Any) -> str:
    """The agent's name (Faust's, without ``__main__.``). A stream outside an agent,
    or the one an agent's ``group_by`` reads back from its repartition topic, is
    named after its topic."""
    name = str(stream.prefix or stream.channel)
    return name[len(_MAIN):] if name.startswith(_MAIN) else name
