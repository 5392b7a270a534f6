"""The environment of the processes the development helpers start.

PyFlink runs a local job's Python workers inside the process that submitted it
(loopback mode) and leaves their settings in that process's ``os.environ``. A
child that inherits them misbehaves: ``PYFLINK_GATEWAY_DISABLED`` makes it
refuse to start a job, and a cluster whose TaskManager sees
``PYTHON_LOOPBACK_SERVER_ADDRESS`` hands its Python work back to that process
instead of starting workers of its own (whose environment then takes the
TaskManager's variables: an empty ``JAVA_HOME`` among them, which broke every
later gateway started from there).
"""

from __future__ import annotations

import os
import sysconfig

LOCAL_JOB_VARIABLES = frozenset({
    "PYFLINK_GATEWAY_DISABLED",
    "PYTHON_LOOPBACK_SERVER_ADDRESS",
    "_PYFLINK_CONN_INFO_PATH",
    "_PYTHON_WORKER_MEMORY_LIMIT",
    "BOOT_LOG_DIR",
    "SEMI_PERSISTENT_DIRECTORY",
    "WORKER_ID",
    "PIPELINE_OPTIONS",
    "LOGGING_API_SERVICE_DESCRIPTOR",
    "CONTROL_API_SERVICE_DESCRIPTOR",
})  # fmt: skip
"""What PyFlink sets in a process where a local job's workers ran."""


def child_environment(**overrides: str) -> dict[str, str]:
    """This process's environment without :data:`LOCAL_JOB_VARIABLES`, plus ``overrides``."""
    env = {k: v for k, v in os.environ.items() if k not in LOCAL_JOB_VARIABLES}
    env.update(overrides)
    return env


def thread_mode_pythonpath(*paths: str) -> str:
    """A ``PYTHONPATH`` for PyFlink's thread mode: the interpreter inside the JVM starts
    from the system's Python, not this virtualenv, so it gets ``paths``, this
    environment's site-packages and whatever ``PYTHONPATH`` already holds."""
    existing = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return os.pathsep.join([*paths, sysconfig.get_paths()["purelib"], *existing])
