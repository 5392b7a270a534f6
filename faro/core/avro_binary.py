"""A hand-specialized Avro binary encoder for the CaptureEvent schema.

Generic encoders resolve every union branch by validating the datum against
each candidate, which costs ~30 µs per event with this schema; the ENTITY path
runs inside the user's operator process, so it gets this encoder instead. It
follows ``capture_event.avsc`` field by field; the field list is checked
against the schema at import, and tests assert byte equality with fastavro
and readability by Apache's ``avro`` package.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from enum import Enum
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from faro.core.events import (
    SCHEMA_VERSION,
    CaptureEvent,
    EventType,
    FeatureStats,
    FeatureValueType,
    OperatorType,
)

if TYPE_CHECKING:
    from faro.core.drafts import EntityEventTemplate

_SCHEMA = json.loads(resources.files("faro.core").joinpath("schema/capture_event.avsc").read_text())
_FIELDS = [f["name"] for f in _SCHEMA["fields"]]
_ENCODED_FIELDS = [
    "event_id", "event_type", "schema_version", "pipeline_id", "operator_id", "operator_type",
    "processing_time", "subtask_index", "features", "input_count", "output_count", "late_count",
    "watermark", "event_time_min", "event_time_max", "window_start", "window_end", "batch_id",
    "capture_drop_since_last", "dropped_count", "feature_stats", "entity_id", "feature_name",
    "feature_value", "value_type", "event_time", "sample_rate", "trace_id",
]  # fmt: skip
if _FIELDS != _ENCODED_FIELDS:
    raise ImportError(
        "capture_event.avsc and faro.core.avro_binary disagree on the field order; "
        "update the encoder together with the schema"
    )


def _symbols(field: str, members: type[Enum]) -> dict[Any, bytes]:
    """Each enum member's index as the schema orders the symbols."""
    [spec] = [f for f in _SCHEMA["fields"] if f["name"] == field]
    enum = spec["type"] if isinstance(spec["type"], dict) else spec["type"][1]
    return {members(s): _long(i) for i, s in enumerate(enum["symbols"])}


def _varint(z: int) -> bytes:
    out = bytearray()
    while z >= 0x80:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


_SMALL = [_varint(n << 1) for n in range(256)]  # 0-255, zig-zagged; also string lengths
_CONTINUED = tuple(bytes((b | 0x80,)) for b in range(128))
_TAILS: dict[int, bytes] = {}
_TAILS_KEPT = 4096


def _long(n: int) -> bytes:
    """Zig-zag varint, Avro's encoding of int and long.

    Epoch-millisecond values dominate, and neighbours share all but their low
    7 bits for 64 ms: above 21 bits, the varint of the rest comes from a cache
    and only the first byte is made (~230 ns against ~430 for two such times
    an ENTITY event carries). The cache starts over when it holds 4,096
    entries, about four minutes of times.
    """
    if 0 <= n < 256:
        return _SMALL[n]
    z = (n << 1) ^ (n >> 63)
    if z < 0x200000:
        return _varint(z)
    tail = _TAILS.get(z >> 7)
    if tail is None:
        if len(_TAILS) >= _TAILS_KEPT:
            _TAILS.clear()
        tail = _TAILS[z >> 7] = _varint(z >> 7)
    return _CONTINUED[z & 0x7F] + tail


_pack_double = struct.Struct("<d").pack
_NULL = b"\x00"
_SOME = b"\x02"
_EMPTY_ARRAY = b"\x00"
_FALSE, _TRUE = b"\x00", b"\x01"
_EVENT_TYPE = _symbols("event_type", EventType)
_OPERATOR_TYPE = _symbols("operator_type", OperatorType)
_VALUE_TYPE = {m: _SOME + i for m, i in _symbols("value_type", FeatureValueType).items()}
# feature_value union: null, boolean, long, double, string, array<double>
_V_BOOL, _V_LONG, _V_DOUBLE, _V_STRING, _V_ARRAY = (_long(i) for i in range(1, 6))


def _string(s: str) -> bytes:
    b = s.encode()
    return _long(len(b)) + b


long_bytes = _long
string_bytes = _string


@lru_cache(maxsize=4096)
def _identity(s: str) -> bytes:
    """Strings that repeat in every event of an operator: encoded once."""
    return _string(s)


@lru_cache(maxsize=1024)
def _string_array(items: tuple[str, ...]) -> bytes:
    if not items:
        return _EMPTY_ARRAY
    return _long(len(items)) + b"".join(_identity(s) for s in items) + _EMPTY_ARRAY


def _opt_long(n: int | None) -> bytes:
    return _NULL if n is None else _SOME + _long(n)


def _opt_double(x: float | None) -> bytes:
    return _NULL if x is None else _SOME + _pack_double(x)


def _opt_string(s: str | None) -> bytes:
    return _NULL if s is None else _SOME + _string(s)


def _stats(stats: list[FeatureStats]) -> bytes:
    if not stats:
        return _EMPTY_ARRAY
    parts = [_long(len(stats))]
    for s in stats:
        parts += (
            _identity(s.name), _long(s.count), _long(s.null_count), _opt_double(s.sum),
            _opt_double(s.sum_sq), _opt_double(s.min), _opt_double(s.max),
        )  # fmt: skip
    parts.append(_EMPTY_ARRAY)
    return b"".join(parts)


def _value(v: Any) -> bytes:
    if v is None:
        return _NULL
    if v is True:
        return _V_BOOL + _TRUE
    if v is False:
        return _V_BOOL + _FALSE
    if type(v) is float:
        return _V_DOUBLE + _pack_double(v)
    if type(v) is int:
        return _V_LONG + _long(v)
    if type(v) is str:
        return _V_STRING + _string(v)
    if type(v) is list:
        if not v:
            return _V_ARRAY + _EMPTY_ARRAY
        return _V_ARRAY + _long(len(v)) + b"".join(_pack_double(x) for x in v) + _EMPTY_ARRAY
    raise ValueError(
        f"feature_value of type {type(v).__name__} cannot be encoded; "
        "build events through the recorder, which coerces values to their value_type"
    )


def encode(e: CaptureEvent) -> bytes:
    """The Avro binary body of one event (no framing)."""
    vt = e.value_type
    return b"".join(
        (
            _string(e.event_id),
            _EVENT_TYPE[e.event_type],
            _long(e.schema_version),
            _identity(e.pipeline_id),
            _identity(e.operator_id),
            _OPERATOR_TYPE[e.operator_type],
            _long(e.processing_time),
            _long(e.subtask_index),
            _string_array(tuple(e.features)),
            _opt_long(e.input_count),
            _opt_long(e.output_count),
            _opt_long(e.late_count),
            _opt_long(e.watermark),
            _opt_long(e.event_time_min),
            _opt_long(e.event_time_max),
            _opt_long(e.window_start),
            _opt_long(e.window_end),
            _opt_long(e.batch_id),
            _TRUE if e.capture_drop_since_last else _FALSE,
            _long(e.dropped_count),
            _stats(e.feature_stats),
            _opt_string(e.entity_id),
            _NULL if e.feature_name is None else _SOME + _identity(e.feature_name),
            _value(e.feature_value),
            _NULL if vt is None else _VALUE_TYPE[vt],
            _opt_long(e.event_time),
            _opt_double(e.sample_rate),
            _opt_string(e.trace_id),
        )
    )


EntityEncoder = Callable[[str, int, str, Any, int | None, str], bytes]
"""``(event_id, processing_time, entity_id, feature_value, event_time, trace_id)``
to the bytes of one ENTITY event."""


def entity_encoder(head: bytes, template: EntityEventTemplate) -> EntityEncoder:
    """Encodes the ENTITY events of ``template`` from the six fields that vary
    per event; the other 22 are encoded here, once. Each event's bytes are
    ``head`` followed by what :func:`encode` gives for the same event; tests
    compare the two. Follows :data:`_ENCODED_FIELDS` like :func:`encode` does.
    """
    t = template
    after_id = b"".join(
        (
            _EVENT_TYPE[EventType.ENTITY],
            _long(SCHEMA_VERSION),
            _identity(t.pipeline_id),
            _identity(t.operator_id),
            _OPERATOR_TYPE[t.operator_type],
        )
    )
    after_time = b"".join(
        (
            _long(t.subtask_index),
            _string_array(tuple(t.features)),
            _NULL * 9,  # input_count ... batch_id
            _FALSE,  # capture_drop_since_last
            _long(0),  # dropped_count
            _EMPTY_ARRAY,  # feature_stats
            _SOME,  # entity_id is set
        )
    )
    after_entity = _SOME + _identity(t.feature_name)
    after_value = _NULL if t.value_type is None else _VALUE_TYPE[t.value_type]
    some_time = _SOME
    before_trace = _opt_double(t.sample_rate) + _SOME
    long, value_bytes, join, sizes = _long, _value, b"".join, _SMALL
    # Processing times repeat for every event made in the same millisecond, so the
    # last one's varint is kept: ~30 ns against ~220. One tuple, swapped whole, so a
    # second thread encoding with this template never pairs a time with other bytes.
    last_time: tuple[int | None, bytes] = (None, b"")

    def encode_entity(
        event_id: str,
        processing_time: int,
        entity_id: str,
        value: Any,
        event_time: int | None,
        trace_id: str,
    ) -> bytes:
        nonlocal last_time
        kept = last_time
        if kept[0] == processing_time:
            time_bytes = kept[1]
        else:
            time_bytes = long(processing_time)
            last_time = (processing_time, time_bytes)
        # the strings inline rather than through _string: three calls fewer (~0.2 µs)
        eid, ent, trace = event_id.encode(), entity_id.encode(), trace_id.encode()
        return join(
            (
                head,
                sizes[len(eid)] if len(eid) < 256 else long(len(eid)),
                eid,
                after_id,
                time_bytes,
                after_time,
                sizes[len(ent)] if len(ent) < 256 else long(len(ent)),
                ent,
                after_entity,
                value_bytes(value),
                after_value,
                _NULL if event_time is None else some_time + long(event_time),
                before_trace,
                sizes[len(trace)] if len(trace) < 256 else long(len(trace)),
                trace,
            )
        )

    return encode_entity
