"""Keeps a local PyFlink job's process alive until faro's wrappers have closed.

Run locally (``python job.py``, on a mini-cluster), a job's Python workers are
threads of the job's own process, and PyFlink tears them down, calling each
function's ``close()``, while ``execute()`` returns. The script then ends, and
the interpreter exits under those daemon threads: a wrapper's last flush (the
final AGGREGATE event of a per-record operator, a window's late records) was
lost whenever it took longer than that. Measured here, a ``close()`` taking
0.2 s already lost the second operator of a chain, and in a freshly installed
environment a Kafka sink's final delivery did. So each wrapper that a worker
thread opens is tracked until it closes, and when the interpreter exits it
waits for them, at most twice ``FARO_ASYNC_CLOSE_TIMEOUT_S``. On a cluster the
workers are processes of their own that close their functions before they
exit, and nothing waits.
"""

from __future__ import annotations

import atexit
import logging
import threading

from faro.core.settings import settings

log = logging.getLogger("faro.flink")


class OpenWrappers:
    """The wrappers that PyFlink's worker threads opened in this process and that
    have not closed yet."""

    def __init__(self) -> None:
        self._open: set[int] = set()
        self._changed = threading.Condition()
        self._waits_at_exit = False

    def opened(self, wrapper: object) -> None:
        """``wrapper`` was opened; the process waits for its :meth:`closed` at exit.
        Not when opened from the main thread: that is a test or a script calling
        it directly, not a PyFlink worker, and it closes what it opens."""
        if threading.current_thread() is threading.main_thread():
            return
        with self._changed:
            self._open.add(id(wrapper))
            if not self._waits_at_exit:
                atexit.register(self.wait)
                self._waits_at_exit = True

    def closed(self, wrapper: object) -> None:
        with self._changed:
            self._open.discard(id(wrapper))
            self._changed.notify_all()

    def wait(self, timeout: float | None = None) -> bool:
        """Waits until every tracked wrapper has closed; False if some had not within
        ``timeout`` seconds (default: twice ``FARO_ASYNC_CLOSE_TIMEOUT_S``)."""
        if timeout is None:
            timeout = 2 * settings().async_close_timeout_s
        with self._changed:
            done = self._changed.wait_for(lambda: not self._open, timeout)
            if not done:
                log.warning(
                    "faro: %d traced operator(s) had not closed %.0f s after the job "
                    "ended; their last counts are lost",
                    len(self._open), timeout,
                )  # fmt: skip
        return done


WRAPPERS = OpenWrappers()
"""This process's: every traced function reports its open and close here."""
