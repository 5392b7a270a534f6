"""Shared resources of the request handlers, the query parameters several of them
take (moments, as-of questions), and the errors they raise."""

from __future__ import annotations

import difflib
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import Depends, HTTPException, Query, Request

from faro.api.metrics import ApiMetrics
from faro.api.models import AsOfLookup
from faro.core.settings import FaroSettings
from faro.core.windows import WindowError, parse_time, window_ms
from faro.store.avro_batch import AvroBatchDecoder
from faro.store.queries import StoreQueries
from faro.store.writer import EventWriter


@dataclass
class Service:
    queries: StoreQueries
    writer: EventWriter
    write_lock: threading.Lock
    decode_lock: threading.Lock  # apart from write_lock: one request decodes while another writes
    decoder: AvroBatchDecoder
    settings: FaroSettings
    metrics: ApiMetrics


def service(request: Request) -> Service:
    svc: Service = request.app.state.service
    return svc


ServiceDep = Annotated[Service, Depends(service)]


def now_ms() -> int:
    return int(time.time() * 1000)


Until = Annotated[
    str | None,
    Query(
        description="where the window ends: an ISO-8601 time or epoch ms (default: now), "
        "to look at a past window"
    ),
]
_LAST_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z


def moment(name: str, text: str) -> int:
    """A query's point in time as epoch ms, within the years the store can date."""
    try:
        ms = parse_time(text)
    except ValueError as exc:
        raise HTTPException(422, f"{name}: {exc}") from None
    if not 0 <= ms <= _LAST_MS:
        raise HTTPException(
            422, f"{name} must fall between 1970-01-01 and 9999-12-31 (UTC); got {text!r}"
        )
    return ms


@dataclass
class AsOfQuery:
    """An as-of question's moments, epoch ms: ``at`` on the ``by`` axis, among the
    values processed by ``known`` whose times are at or after ``since``."""

    at: int
    by: Literal["processing", "event"]
    known: int
    since: int


def as_of_query(
    at: Annotated[str, Query(description="an ISO-8601 time or epoch ms")],
    by: Annotated[
        Literal["processing", "event"],
        Query(
            description="processing: the last value processed at or before `at`; event: the "
            "value of the latest event time at or before `at`, as known at `known_at`"
        ),
    ] = "processing",
    known_at: Annotated[
        str | None,
        Query(description="with by=event: an ISO-8601 time or epoch ms (default: now)"),
    ] = None,
    lookback: Annotated[
        str, Query(description="how far before `at` to look for a value, as a window")
    ] = "7d",
) -> AsOfQuery:
    [query] = as_of_queries([at], by, known_at, lookback)
    return query


AsOf = Annotated[AsOfQuery, Depends(as_of_query)]


def as_of_queries(
    ats: list[str],
    by: Literal["processing", "event"],
    known_at: str | None,
    lookback: str,
    names: list[str] | None = None,
) -> list[AsOfQuery]:
    """One as-of question per moment of ``ats`` (named ``names`` in errors), all on
    the same axis, lookback and ``known_at`` (by event time: one "now" for all)."""
    if by == "processing" and known_at is not None:
        raise HTTPException(
            422,
            "known_at applies only with by=event: by processing time, what was known "
            "at `at` is what had been processed by then",
        )
    try:
        span = window_ms(lookback)
    except WindowError as exc:
        raise WindowError(f"lookback: {exc}") from None
    known = None
    if by == "event":
        known = now_ms() if known_at is None else moment("known_at", known_at)
    queries = []
    for at, name in zip(ats, names or ["at"] * len(ats), strict=True):
        point = moment(name, at)
        queries.append(AsOfQuery(point, by, point if known is None else known,
                                 max(0, point - span)))  # fmt: skip
    return queries


def values_as_of_many(
    svc: Service,
    lookups: Sequence[AsOfLookup],
    field: str,
    *,
    by: Literal["processing", "event"],
    known_at: str | None,
    lookback: str,
    pipeline_id: str | None,
    features: list[str] | None,
) -> tuple[list[AsOfQuery], list[list[dict[str, Any]]]]:
    """The as-of question of each of a body's ``lookups`` (a bad time is a 422 naming
    ``field[i].at``), and each one's values then, from one range join."""
    queries = as_of_queries(
        [str(x.at) for x in lookups], by, known_at, lookback,
        [f"{field}[{i}].at" for i in range(len(lookups))],
    )  # fmt: skip
    found = svc.queries.entity_values_as_of_many(
        [(x.entity_id, q.at, q.known, q.since) for x, q in zip(lookups, queries, strict=True)],
        by=by, pipeline_id=pipeline_id, features=features,
    )  # fmt: skip
    return queries, found


def window_end(until: str | None) -> int | None:
    """``until`` as epoch ms, or None for now."""
    return None if until is None else moment("until", until)


def window_bounds(window: str, until: str | None) -> tuple[int, int | None]:
    """Where a ``window`` ending at ``until`` starts, and where it ends (None: now,
    with no upper bound on processing time), epoch ms."""
    span = window_ms(window)
    end = window_end(until)
    return (now_ms() if end is None else end) - span, end


def unknown(what: str, name: str, known: list[str]) -> HTTPException:
    """404 naming the closest known names, so a typo is obvious."""
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    listing = ", ".join(known[:20]) or "none yet"
    return HTTPException(404, f"unknown {what} {name!r}{hint} Known: {listing}")


def require_pipeline(svc: Service, pipeline_id: str) -> None:
    known = svc.queries.pipelines()
    if pipeline_id not in known:
        raise unknown("pipeline", pipeline_id, known)


def require_operator(svc: Service, pipeline_id: str, operator_id: str) -> None:
    known = [r["operator_id"] for r in svc.queries.operators(pipeline_id, 0)]
    if operator_id not in known:
        raise unknown(f"operator of pipeline {pipeline_id!r}:", operator_id, known)


def require_entity_values(svc: Service, pipeline_id: str, feature: str) -> None:
    """Tells a misspelled feature, and one with no per-entity values at all, from
    values that are merely absent (ask only when nothing was found: it reads the
    pipeline's catalog)."""
    catalog = {f["name"]: f["entity_values"] for f in svc.queries.feature_catalog(pipeline_id)}
    if feature not in catalog:
        raise unknown(f"feature of pipeline {pipeline_id!r}:", feature, sorted(catalog))
    if not catalog[feature]:
        raise HTTPException(
            422,
            f"feature {feature!r} of pipeline {pipeline_id!r} has no ENTITY values to compare "
            "with: it is PERSONAL or SENSITIVE, or configured without entity_key, so faro "
            "keeps its aggregate statistics only",
        )
