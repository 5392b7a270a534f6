"""The faro command's own behaviour (the commands' work is tested with their modules)."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from faro.cli import main
from faro.store.status import store_status
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
    commands = (["serve"], ["compact"], ["detect"], ["status"], ["erase", "--entity-id", "u1"])
    for command in commands:
        with pytest.raises(SystemExit) as stopped:
            main([*command, "--data-dir", str(a_file)])
        assert stopped.value.code == 2
        err = capsys.readouterr().err
        assert f"--data-dir: {a_file} is a file; the store is a directory" in err


def test_faro_status_prints_the_store_as_text_or_json(tmp_path, capsys):
    flushes(tmp_path, range(0, 10))
    status = store_status(tmp_path)
    assert status.events > 0
    assert main(["status", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"{status.events:,} events in {status.files:,} files" in out
    assert all(f"{h.event_type}" in out and h.pipeline_id in out for h in status.holdings)
    assert main(["status", "--data-dir", str(tmp_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == status.to_dict()
    assert main(["status", "--data-dir", str(tmp_path / "typo")]) == 2
    assert "no store at" in capsys.readouterr().err


def test_faro_version_prints_the_installed_release(capsys):
    from importlib.metadata import version

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    # the package's metadata takes its version from faro.__version__ (pyproject.toml)
    assert capsys.readouterr().out == f"faro {version('faro')}\n"
