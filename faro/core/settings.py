"""Every default faro uses, overridable by ``FARO_*`` environment variables.

This module is the single place those defaults are written down; the table in
``docs/configuration.md`` mirrors it.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class FaroSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FARO_", extra="ignore")

    async_capacity: int = Field(
        default=10_000, ge=1, description="events the async ring buffer holds"
    )
    async_batch_size: int = Field(
        default=512, ge=1, description="events handed to the wrapped sink at once"
    )
    async_interval_ms: int = Field(
        default=200, ge=1, description="longest an event waits in the ring buffer before delivery"
    )
    async_close_timeout_s: float = Field(
        default=5.0, ge=0, description="how long close() waits for buffered events to drain"
    )
    kafka_topic: str = Field(default="faro.capture-events", min_length=1)
    kafka_message_timeout_ms: int = Field(
        default=30_000,
        ge=1,
        description="how long the producer retries one message before counting it failed",
    )
    kafka_queue_messages: int = Field(
        default=500_000, ge=1, description="messages librdkafka buffers before the sink drops"
    )
    kafka_queue_full_wait_s: float = Field(
        default=1.0,
        ge=0,
        description="how long the async worker waits for producer queue space per event",
    )
    http_batch_size: int = Field(default=500, ge=1, description="events per POST")
    http_linger_s: float = Field(
        default=1.0,
        ge=0,
        description="longest an event waits for its batch to fill before a partial POST",
    )
    http_timeout_s: float = Field(
        default=5.0, gt=0, description="connect and read timeout of one POST"
    )
    http_max_retries: int = Field(
        default=3, ge=0, description="retries of a POST on 5xx, 429 or network error"
    )
    http_backoff_s: float = Field(
        default=0.2, ge=0, description="first retry delay; doubles per retry"
    )
    local_path: str = Field(
        default="faro-data",
        min_length=1,
        description="data directory of the Parquet store (materializer, API, maintenance)",
    )
    api_token: str | None = Field(
        default=None, description="when set, POST /ingest requires 'Authorization: Bearer <token>'"
    )
    ingest_max_bytes: int = Field(
        default=32 * 1024 * 1024, ge=1, description="largest /ingest body, after gunzip"
    )
    stale_after_s: float = Field(
        default=60.0,
        gt=0,
        description="an operator with no flush for this long is STALE, and a subtask this far "
        "behind its siblings' newest flush is stalled",
    )
    silent_after_s: float = Field(
        default=300.0, gt=0, description="an operator with no flush for this long is SILENT"
    )
    detect_interval: float = Field(
        default=60.0,
        ge=0,
        description="seconds between the API's detection runs; 0 turns detection off",
    )
    detect_config: str | None = Field(
        default=None,
        description="threshold file (faro.toml); default ./faro.toml if present, else defaults",
    )
    alert_webhook: str | None = Field(
        default=None, description="URL that receives a JSON POST when a violation opens or resolves"
    )
    error_log_interval_s: float = Field(
        default=60.0, ge=0, description="a failing sink logs at most once per interval"
    )


def settings() -> FaroSettings:
    """Read afresh on each call so a worker process sees its own environment."""
    return FaroSettings()
