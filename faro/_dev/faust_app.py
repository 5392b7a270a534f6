"""A Faust app for one local worker, as the Faust tests, benchmark and job run it."""

from __future__ import annotations

import faust


def local_app(app_id: str, broker: str, datadir: str, partitions: int) -> faust.App:
    """An app on ``broker`` (HOST:PORT) that keeps its tables in memory and its files
    in ``datadir``, with no web server, creating its topics with ``partitions``
    partitions and one replica.

    Its worker is alone in its consumer group, and a broker may wait up to half
    the session timeout for other members before the group forms (the test broker
    does). Faust's default session of 60 s would hold the first events back by
    30 s; 6 s keeps it to 3."""
    return faust.App(
        app_id,
        broker=f"kafka://{broker}",
        store="memory://",
        datadir=datadir,
        web_enabled=False,
        topic_partitions=partitions,
        topic_replication_factor=1,
        broker_session_timeout=6,
        broker_heartbeat_interval=1,
    )
