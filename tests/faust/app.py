"""A Faust feature pipeline for the sensor's tests, run as a worker by them:

    BROKER=... ORDERS=... CAPTURE=... SINK=kafka|failing APP_ID=... DATADIR=... \
        python -m tests.faust.app worker

Its agent keeps orders of at least MIN_AMOUNT (``stream.filter``), adds each to
its user's running total in the table ``purchase_total`` and sends the new total
to the topic ``<ORDERS>-totals``: what the tests compare with their own sums.
With GROUP_BY set, it first repartitions the orders by user (``group_by``).
FaroSensor reports the agent and the table to the topic CAPTURE (SINK=kafka), or
to a sink whose every call raises (SINK=failing).
"""

from __future__ import annotations

import os
from typing import Any

from faro import FaroConfig, FaroFeatureConfig, KafkaCaptureEventSink
from faro._dev.faust_app import local_app
from faro.faust import FaroSensor
from tests.faust import MIN_AMOUNT, PARTITIONS

BROKER = os.environ["BROKER"]
app = local_app(os.environ["APP_ID"], BROKER, os.environ["DATADIR"], PARTITIONS)
orders = app.topic(os.environ["ORDERS"], value_serializer="json", partitions=PARTITIONS)
totals_out = app.topic(f"{os.environ['ORDERS']}-totals", value_serializer="json")
purchase_total = app.Table("purchase_total", default=float)


class FailingSink:
    def emit(self, event: Any) -> None:
        raise RuntimeError("the capture destination is down")

    def flush(self, timeout: float | None = None) -> bool:
        raise RuntimeError("the capture destination is down")

    def close(self) -> None:
        raise RuntimeError("the capture destination is down")


sink = (
    FailingSink
    if os.environ["SINK"] == "failing"
    else KafkaCaptureEventSink.factory(BROKER, topic=os.environ["CAPTURE"])
)
app.sensors.add(
    FaroSensor(
        "faust-pipeline",
        sink,
        {
            "score": FaroConfig(
                features={
                    "amount": FaroFeatureConfig(feature_value="amount"),
                    "kept_amount": FaroFeatureConfig(feature_value="amount", on="output"),
                }
            ),
            "purchase_total": FaroConfig(
                features={
                    "purchase_total": FaroFeatureConfig(entity_key="key", feature_value="value")
                }
            ),
        },
        flush_interval=0.5,
    )
)


@app.agent(orders, name="score")
async def score(stream: Any) -> None:
    kept = stream.filter(lambda o: o["amount"] >= MIN_AMOUNT)
    if os.environ.get("GROUP_BY"):  # repartitioned by user, through a topic of Faust's
        kept = kept.group_by(lambda o: o["user"], name="user")
    async for order in kept:
        purchase_total[order["user"]] += order["amount"]
        await totals_out.send(
            key=order["user"],
            value={"user": order["user"], "total": purchase_total[order["user"]]},
        )


if __name__ == "__main__":
    app.main()
