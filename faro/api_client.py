"""The query API as the ``faro`` commands that use it (``faro skew``, ``faro compare``)
call it: over HTTP with the standard library, so they run wherever the API is
reachable and need nothing beyond faro's core."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlencode


def call(
    api: str,
    path: str,
    *,
    body: dict[str, Any] | None = None,
    query: dict[str, Any] | None = None,
    timeout: float = 300,
) -> dict[str, Any]:
    """GET ``path`` (POST with a JSON ``body``); the answer's JSON. A refusal is a
    RuntimeError with the API's own message, an API that is not there one that says
    how to start it."""
    params = {k: v for k, v in (query or {}).items() if v is not None}
    url = f"{api.rstrip('/')}{path}" + (f"?{urlencode(params)}" if params else "")
    request = urllib.request.Request(
        url,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="GET" if body is None else "POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer: dict[str, Any] = json.load(response)
            return answer
    except urllib.error.HTTPError as exc:
        try:
            detail = json.load(exc).get("detail", exc.reason)
        except ValueError:
            detail = exc.reason
        raise RuntimeError(f"the API at {api} answered {exc.code}: {detail}") from None
    except urllib.error.URLError as exc:
        raise RuntimeError(
            f"cannot reach the API at {api} ({exc.reason}); start it with `faro serve` or "
            "pass --api"
        ) from None
