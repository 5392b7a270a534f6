"""The grid of a window operator's windows, and the windows missing from it."""

from __future__ import annotations

from faro.detect.cadence import MAX_GRID_POINTS, cadence


def test_a_single_window_is_taken_as_tumbling() -> None:
    got = cadence([(1_000, 6_000)])
    assert (got.length_ms, got.step_ms, got.missing, got.note) == (5_000, 5_000, [], None)


def test_an_offset_grid_is_found_from_the_starts_alone() -> None:
    # hourly windows offset by 15 minutes, fired out of order, 3rd and 4th missing
    hour, offset = 3_600_000, 900_000
    fired = [(offset + i * hour, offset + (i + 1) * hour) for i in (5, 0, 1, 4)]
    got = cadence(fired + fired[:1])  # a window fired twice counts once
    assert (got.length_ms, got.step_ms) == (hour, hour)
    assert got.missing == [(offset + i * hour, offset + (i + 1) * hour) for i in (2, 3)]


def test_a_grid_too_fine_to_list_is_reported_not_enumerated() -> None:
    got = cadence([(0, 10), (2, 12), (2 * (MAX_GRID_POINTS + 1), 2 * (MAX_GRID_POINTS + 1) + 10)])
    assert got.step_ms == 2 and got.missing == []
    assert got.note is not None and "windows to check" in got.note
