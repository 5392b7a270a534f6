"""Streaming queries as operators of their own, reported from their progress alone.

Spark already counts, for every micro-batch, the rows a query read, the rows
its stateful operators dropped behind the watermark, the watermark and the
range of event times; it hands them to listeners with the batch's progress.
Reporting those adds nothing to the query's plan, so it costs the query
nothing, and needs no change to it.
"""

from __future__ import annotations

from faro.core.config import FaroConfig
from faro.core.events import OperatorType
from faro.core.recorder import OperatorRecorder
from faro.core.sink import CaptureEventSink
from faro.spark.listener import QueryProgress


class QueryReports:
    """One SOURCE operator per streaming query, named after the query (its
    ``queryName``, else its id, which a checkpoint keeps across restarts)."""

    def __init__(self, pipeline_id: str, sink: CaptureEventSink, names: frozenset[str]):
        self.pipeline_id = pipeline_id
        self.sink = sink
        self.names = names  # empty: every query
        self._recorders: dict[str, OperatorRecorder] = {}

    def report(self, progress: QueryProgress) -> None:
        """One AGGREGATE event for the micro-batch ``progress`` describes, if its query
        is one of ``names``: the rows it read are the operator's input and output."""
        operator_id = progress.name or progress.query_id
        if self.names and operator_id not in self.names:
            return
        recorder = self._recorders.get(operator_id)
        if recorder is None:
            recorder = self._recorders[operator_id] = OperatorRecorder(
                self.pipeline_id, operator_id, OperatorType.SOURCE, FaroConfig(), self.sink
            )
        recorder.report(
            input_count=progress.input_rows,
            output_count=progress.input_rows,
            late_count=progress.late_rows,
            event_time_min=progress.event_time_min,
            event_time_max=progress.event_time_max,
            feature_stats=[],
            watermark=progress.watermark,
            batch_id=progress.batch_id,
        )
