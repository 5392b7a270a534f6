"""``faro compare``: a pipeline version in shadow against the one in production,
through the query API, as a gate before the switch.

``GET /features/{feature}/compare`` pairs the two versions' values record by
record; this prints what it found and fails (exit 1) when more records differ,
or more are missing on one side, than the thresholds allow, so a deployment
script can hold the switch back. A comparison with nothing to compare fails
too: a gate that saw no records has shown nothing.
"""

from __future__ import annotations

import json
from typing import IO, Any
from urllib.parse import quote

from faro.api_client import call
from faro.core.windows import format_time

WINDOWS_LISTED = 20


def compare(api: str, feature: str, query: dict[str, Any], windows: bool) -> dict[str, Any]:
    """Record by record, or with ``windows`` window by window."""
    path = f"/features/{quote(feature, safe='')}/compare" + ("/windows" if windows else "")
    return call(api, path, query=query)


def summary(answer: dict[str, Any]) -> str:
    """What the comparison found, a line per count, and the hours where it went wrong."""
    if "differing" in answer:
        return window_summary(answer)
    a = f"{answer['pipeline_id']}/{answer['operator_id']}"
    b = f"{answer['against']}/{answer['against_operator_id']}"
    compared = answer["compared"]
    lines = [
        f"{answer['feature']}: {a} against {b}, records with event times from "
        f"{format_time(answer['since'])} to {format_time(answer['until'])}",
        f"  compared        {compared:>10,}   records both captured",
        f"  matched         {answer['matched']:>10,}",
        f"  mismatched      {answer['mismatched']:>10,}   {_share(answer['mismatch_rate'])}"
        + ("" if answer["max_abs_diff"] is None
           else f", largest difference {answer['max_abs_diff']:g}"),
        f"  {b} minus {a}, on average: "
        + ("-" if answer["mean_diff"] is None else f"{answer['mean_diff']:+g}"),
        f"  only in {a}: {answer['only_in_pipeline']:,}; only in {b}: "
        f"{answer['only_in_against']:,}   (records the other side should have)",
        f"  pending         {answer['pending']:>10,}   (later than the other side has got)",
        f"  out of sample   {answer['out_of_sample']:>10,}   (entities only one side samples)",
    ]  # fmt: skip
    if answer["delay_p50_ms"] is not None:
        lines.append(
            f"  {b} processes a record {answer['delay_p50_ms'] / 1000:+.3f} s after {a} "
            f"(median; p95 {answer['delay_p95_ms'] / 1000:+.3f} s)"
        )
    wrong = [h for h in answer["hours"] if h["mismatched"] or h["only_in_pipeline"]
             or h["only_in_against"]]  # fmt: skip
    if wrong:
        lines.append("  hours (UTC, event time) with mismatched or one-sided records:")
        lines += [
            f"    {format_time(h['start'])}  compared {h['compared']:>8,}  mismatched "
            f"{h['mismatched']:>7,}  only in one side {one:>7,}"
            for h in wrong
            for one in [h["only_in_pipeline"] + h["only_in_against"]]
        ]  # fmt: skip
    return "\n".join(lines)


def window_summary(answer: dict[str, Any]) -> str:
    """What a window-by-window comparison found, and the first windows that differ."""
    a = f"{answer['pipeline_id']}/{answer['operator_id']}"
    b = f"{answer['against']}/{answer['against_operator_id']}"
    differing = ", ".join(f"{m} {n:,}" for m, n in answer["differing"].items() if n)
    lines = [
        f"{answer['feature']}: {a} against {b}, windows ending from "
        f"{format_time(answer['since'])} to {format_time(answer['until'])}",
        f"  compared        {answer['compared']:>10,}   windows both fired",
        f"  matched         {answer['matched']:>10,}",
        f"  mismatched      {answer['mismatched']:>10,}   {_share(answer['mismatch_rate'])}"
        + (f"; differing in {differing}" if differing else ""),
        f"  only in {a}: {answer['only_in_pipeline']:,}; only in {b}: "
        f"{answer['only_in_against']:,}   (windows the other side should have fired)",
        f"  pending         {answer['pending']:>10,}   (later than the other side has got)",
    ]  # fmt: skip
    if answer["mismatches"]:
        lines.append("  mismatched windows (UTC), the first:")
        lines += [
            f"    {format_time(w['window_start'])} to {format_time(w['window_end'])}: "
            + ", ".join(f"{m} {w['pipeline'][m]} against {w['against'][m]}" for m in w["differs"])
            for w in answer["mismatches"][:WINDOWS_LISTED]
        ]  # fmt: skip
    return "\n".join(lines)


def failures(
    answer: dict[str, Any], max_mismatch_rate: float | None, max_one_sided_rate: float | None
) -> list[str]:
    """Why the gate fails, if it does."""
    if max_mismatch_rate is None and max_one_sided_rate is None:
        return []
    compared = answer["compared"]
    one_sided = answer["only_in_pipeline"] + answer["only_in_against"]
    if not compared:
        return [
            "nothing both sides captured fell in the window, so nothing was compared: "
            "check the pipeline and operator names, or widen --window"
        ]
    found = []
    if max_mismatch_rate is not None and answer["mismatch_rate"] > max_mismatch_rate:
        found.append(
            f"mismatch rate {_share(answer['mismatch_rate'])} exceeds {_share(max_mismatch_rate)}"
        )
    one_sided_rate = one_sided / (compared + one_sided)
    if max_one_sided_rate is not None and one_sided_rate > max_one_sided_rate:
        found.append(
            f"{one_sided:,} records only one side captured ({_share(one_sided_rate)}) exceed "
            f"{_share(max_one_sided_rate)}"
        )
    return found


def write_records(answer: dict[str, Any], out: IO[str]) -> int:
    """The listed mismatched and one-sided records (or windows) as JSON lines; how many."""
    rows = [{"kind": "mismatched", **m} for m in answer["mismatches"]]
    rows += [{"kind": "one_sided", **r} for r in answer["one_sided"]]
    for row in rows:
        out.write(json.dumps(row) + "\n")
    return len(rows)


def _share(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.3%}"
