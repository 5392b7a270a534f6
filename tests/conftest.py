"""Session-scoped real components shared by the integration tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from faro._dev.broker import LocalBroker


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    """The real tansu broker, started once per session on a free loopback port."""
    log_path = tmp_path_factory.mktemp("broker") / "tansu.log"
    with LocalBroker(log_path=log_path) as b:
        yield b
