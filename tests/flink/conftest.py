"""A real PyFlink mini-cluster, its Python workers using this interpreter."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator

import pytest
from pyflink.datastream import StreamExecutionEnvironment

from faro.core.events import CaptureEvent
from faro.core.json_codec import from_json
from tests.support import Receiver, http_receiver, wait_for

CLOSE_GRACE_S = 60.0
"""How long to wait for events after the job returned. A traced function sends its
last events in ``close()``, and PyFlink runs ``close()`` in the Python worker's
teardown, after the job's result is back: a ``close()`` sleeping 12 s finished
well after its 3.5 s job had returned. On a loaded machine that lag passed the
10 s these tests once allowed."""


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


def wait_received(rx: Receiver, at_least: int) -> list[CaptureEvent]:
    """The events received once there are ``at_least`` of them; fails saying how many came."""
    arrived = wait_for(lambda: len(received_events(rx)) >= at_least, CLOSE_GRACE_S)
    events = received_events(rx)
    assert arrived, f"{len(events)} events arrived within {CLOSE_GRACE_S}s, expected {at_least}"
    return events
