"""A real PyFlink mini-cluster, its Python workers using this interpreter."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator

import pytest
from pyflink.datastream import StreamExecutionEnvironment

from faro.core.events import CaptureEvent
from faro.core.json_codec import from_json
from tests.support import Receiver, http_receiver


@pytest.fixture
def flink_env() -> Callable[[int], StreamExecutionEnvironment]:
    def make(parallelism: int) -> StreamExecutionEnvironment:
        env = StreamExecutionEnvironment.get_execution_environment()
        env.set_parallelism(parallelism)
        env.set_python_executable(sys.executable)
        return env

    return make


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with http_receiver() as rx:
        yield rx


def received_events(rx: Receiver) -> list[CaptureEvent]:
    return [e for r in rx.requests for e in from_json(r.body)]
