"""The faro command's own behaviour (the commands' work is tested with their modules)."""

from __future__ import annotations

import datetime as dt

import pytest

from faro.cli import main
from tests.detect.flushes import MIN, T0, flushes


def test_faro_detect_command_records_and_prints_open_violations(tmp_path, capsys):
    flushes(tmp_path, range(0, 10))
    at = dt.datetime.fromtimestamp((T0 + 30 * MIN) / 1000, tz=dt.timezone.utc)
    argv = ["detect", "--data-dir", str(tmp_path), "--at", at.strftime("%Y-%m-%dT%H:%M:%S")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "1 opened, 0 resolved, 1 open" in out
    assert "CRITICAL" in out and "pay/score has not emitted for 1260 s" in out
    assert main([*argv[:-1], "half past nine"]) == 2
    assert "--at: expected an ISO-8601 time" in capsys.readouterr().err


def test_a_data_dir_that_is_a_file_is_refused_before_anything_starts(tmp_path, capsys):
    a_file = tmp_path / "events.parquet"
    a_file.write_bytes(b"")
    for command in (["serve"], ["compact"], ["detect"], ["erase", "--entity-id", "u1"]):
        with pytest.raises(SystemExit) as stopped:
            main([*command, "--data-dir", str(a_file)])
        assert stopped.value.code == 2
        err = capsys.readouterr().err
        assert f"--data-dir: {a_file} is a file; the store is a directory" in err
