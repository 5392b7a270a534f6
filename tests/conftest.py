"""Session-scoped real components shared by the integration tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import settings

from faro._dev.broker import LocalBroker

# Property tests check values, not speed. Hypothesis fails an example slower than
# 200 ms by default, and on a busy two-core machine a first example (pyarrow's
# first conversions, imports) can take longer: the round trip of events_to_table
# once failed that way.
settings.register_profile("faro", deadline=None)
settings.load_profile("faro")


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    """The real tansu broker, started once per session on a free loopback port."""
    log_path = tmp_path_factory.mktemp("broker") / "tansu.log"
    with LocalBroker(log_path=log_path) as b:
        yield b
