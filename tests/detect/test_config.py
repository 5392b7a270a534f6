"""faro.toml: layered thresholds and errors that say what to fix."""

from __future__ import annotations

import pytest

from faro.detect import DetectConfig, load
from tests.support import tomllib

TOML = """
[detect]
window = "15m"

[defaults]
freshness_s = 120

[features.revenue]
null_rate = 0.2

[pipelines.orders]
freshness_s = 60
null_rate = 0.1

[pipelines.orders.operators.agg]
freshness_s = 30

[pipelines.orders.features.revenue]
min = 0
max = 1000
"""


def test_the_most_specific_table_wins():
    config = DetectConfig(tomllib.loads(TOML))
    assert config.window_ms == 15 * 60_000
    assert config.thresholds().freshness_s == 120
    assert config.thresholds("other").freshness_s == 120
    assert config.thresholds("orders").freshness_s == 60
    assert config.thresholds("orders", "agg").freshness_s == 30
    assert config.thresholds("orders", "filter").freshness_s == 60
    # a pipeline-wide threshold beats a feature-wide one; the pipeline's feature table beats both
    assert config.thresholds("other", feature="revenue").null_rate == 0.2
    assert config.thresholds("orders", feature="revenue").null_rate == 0.1
    assert config.thresholds("orders", feature="revenue").max == 1000
    assert config.thresholds("other", feature="revenue").max is None
    assert config.thresholds("orders", feature="revenue").asserts
    assert not config.thresholds("other", feature="revenue").asserts


def test_defaults_without_a_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load(None)
    assert config.source == "defaults" and config.window == "5m"
    assert config.default.freshness_s == 300 and config.default.null_rate == 0.05


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[defaults]\nfreshnes_s = 3", "unknown threshold.*freshnes_s"),
        ("[alerts]\nx = 1", r"unknown table.*alerts"),
        ('[detect]\nwindow = "7m"', "must divide a day"),
        ('[detect]\nwindow = "1 hour"', "15m, 1h"),
        ("[pipelines.p.features.f]\nmin = 5\nmax = 1", "swap them"),
        ("[defaults]\nnull_rate = 2", "null_rate"),
        ("[defaults\n", "not valid TOML"),
    ],
)
def test_bad_files_say_what_to_fix(tmp_path, text, message):
    path = tmp_path / "faro.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        load(path)


def test_a_missing_file_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load(tmp_path / "nope.toml")
