"""Time windows as faro spells them (query strings, faro.toml): ``15m``, ``1h``, ``7d``."""

from __future__ import annotations

import datetime as dt
import re

_UNITS_MS = {"m": 60_000, "h": 3_600_000, "d": 86_400_000}
_FORM = re.compile(r"^(\d{1,4})([mhd])$")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
ACCEPTED = "a number followed by m, h or d, for example 15m, 1h, 24h or 7d"


class WindowError(ValueError):
    """A window string the API does not accept; the message says which forms it does."""


def window_ms(text: str) -> int:
    """Milliseconds in ``text``; raises :class:`WindowError` with the accepted forms."""
    match = _FORM.match(text.strip())
    if not match or int(match.group(1)) == 0:
        raise WindowError(f"window must be {ACCEPTED}; got {text!r}")
    return int(match.group(1)) * _UNITS_MS[match.group(2)]


def shift_ms(text: str) -> int:
    """``compare_to`` values: ``24h_ago`` or ``7d_ago`` -> how far back, in ms."""
    if not text.endswith("_ago"):
        raise WindowError(f"compare_to must look like 24h_ago or 7d_ago; got {text!r}")
    try:
        return window_ms(text[: -len("_ago")])
    except WindowError:
        raise WindowError(f"compare_to must look like 24h_ago or 7d_ago; got {text!r}") from None


def parse_time(text: str) -> int:
    """An ISO-8601 time (UTC when it has no offset) or epoch ms, as epoch ms;
    raises ValueError naming both forms."""
    if text.isdigit():
        return int(text)
    try:
        # Python 3.10's fromisoformat does not read the Z suffix
        moment = dt.datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    except ValueError:
        raise ValueError(
            f"expected an ISO-8601 time like 2026-11-23T08:00:00Z or epoch ms, got {text!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return (moment - _EPOCH) // dt.timedelta(milliseconds=1)  # exact, unlike float seconds


def format_time(epoch_ms: int) -> str:
    """Epoch ms as the ISO-8601 UTC time :func:`parse_time` reads, to the second."""
    moment = dt.datetime.fromtimestamp(epoch_ms / 1000, tz=dt.timezone.utc)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")
