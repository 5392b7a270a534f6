"""faro-api: the query API over the Parquet store (``faro serve``)."""

from faro.api.app import create_app

__all__ = ["create_app"]
