"""Counting failures at faro's boundary without flooding the user's logs."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from faro.core.settings import settings


class FailureLog:
    """Counts failures of one component and logs at most once per interval.

    Thread-safe. The first failure is always logged, with the exception;
    later ones within the interval are only counted and summarized in the
    next log line, so a destination that is down costs one line a minute.
    """

    def __init__(
        self,
        component: str,
        logger: logging.Logger,
        interval_s: float | None = None,
        outcome: str = "the pipeline is unaffected",
    ):
        self.component = component
        self.outcome = outcome
        self.count = 0
        self._logger = logger
        self._interval = settings().error_log_interval_s if interval_s is None else interval_s
        self._last_log = float("-inf")
        self._unlogged = 0
        self._lock = threading.Lock()

    def record(self, what: str, exc: BaseException | None = None, n: int = 1) -> None:
        with self._lock:
            self.count += n
            now = time.monotonic()
            if now - self._last_log < self._interval:
                self._unlogged += n
                return
            suppressed, self._unlogged, self._last_log = self._unlogged, 0, now
        more = f" ({suppressed} similar failures since the last report)" if suppressed else ""
        self._logger.warning("%s: %s%s; %s", self.component, what, more, self.outcome, exc_info=exc)


class KafkaClientLog:
    """What a Kafka client (librdkafka) says, in ``logger``'s log: its ``logger``
    and ``error_cb`` settings.

    librdkafka writes a raw line to stderr at every reconnect attempt (~20 a
    second while a broker is down). Those lines go to DEBUG on ``logger``'s
    child ``librdkafka``; each kind of client error is logged as one WARNING
    naming the brokers, then at most once per ``interval_s`` with how often it
    recurred. The client keeps retrying on its own either way.
    """

    def __init__(
        self, bootstrap_servers: str, logger: logging.Logger, interval_s: float = 30.0
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.interval_s = interval_s
        self._logger = logger
        self._raw = logger.getChild("librdkafka")
        self._by_code: dict[Any, FailureLog] = {}

    def log(self, level: int, fmt: str, *args: Any) -> None:
        self._raw.debug(fmt, *args)

    def error(self, err: Any) -> None:
        failures = self._by_code.get(err.code())
        if failures is None:
            failures = self._by_code[err.code()] = FailureLog(
                f"Kafka at {self.bootstrap_servers}", self._logger, self.interval_s,
                outcome="the client keeps retrying",
            )  # fmt: skip
        failures.record(err.str())
