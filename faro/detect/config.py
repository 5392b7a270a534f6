"""Detection thresholds: documented defaults, overridable per pipeline, operator and
feature in a ``faro.toml``.

A threshold is looked up from the most specific table that sets it::

    [defaults]                                      # every pipeline
    [features.revenue_7d]                           # this feature, any pipeline
    [pipelines."order-pipeline"]                    # this pipeline
    [pipelines."order-pipeline".operators.agg]      # this operator
    [pipelines."order-pipeline".features.revenue_7d]

so a file that sets nothing leaves every default in force. The defaults are
the values of :class:`Thresholds`; ``docs/violations.md`` explains each.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from faro.core.windows import window_ms

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib


class Thresholds(BaseModel):
    """Every threshold a detector reads, with its default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    freshness_s: float = Field(300.0, gt=0, description="longest silence of an operator")
    watermark_lag_s: float = Field(600.0, gt=0, description="largest mean watermark lag")
    cardinality_change: float = Field(
        0.5, gt=0, lt=1, description="relative change of a count (or out/in ratio) that alarms"
    )
    rolling_windows: int = Field(24, ge=3, description="windows in the rolling-median baseline")
    min_count: int = Field(
        20, ge=1, description="records a window (and its baseline) needs before it is judged"
    )
    null_rate: float = Field(0.05, ge=0, lt=1, description="largest share of null values")
    mean_drift_sigma: float = Field(
        2.0, gt=0, description="largest shift of the mean, in baseline standard deviations"
    )
    psi: float = Field(0.25, gt=0, description="largest population stability index")
    psi_min_count: int = Field(
        200, ge=10, description="ENTITY values a window and its baseline need for PSI"
    )
    zscore: float = Field(3.0, gt=0, description="largest |z| against the 7-day same-hour baseline")
    zscore_min_days: int = Field(3, ge=2, le=7, description="days of history ZSCORE needs")
    zscore_min_relative_std: float = Field(
        0.2, ge=0, description="floor of the baseline std as a share of its mean"
    )
    subtask_behind_s: float = Field(
        300.0,
        ge=0,
        description="longest a subtask's last flush may trail its siblings' newest; 0: off",
    )
    late_rate: float = Field(
        0.05,
        ge=0,
        lt=1,
        description="largest share of an operator's input that arrives behind its watermark; "
        "0: off",
    )
    missing_windows: int = Field(
        1, ge=0, description="windows a window operator skips on its grid before it alarms; 0: off"
    )
    not_null: bool = Field(False, description="ENTITY values of the feature must not be null")
    min: float | None = Field(None, description="smallest allowed ENTITY value")
    max: float | None = Field(None, description="largest allowed ENTITY value")

    @property
    def asserts(self) -> bool:
        """Whether ENTITY values of the feature carry a NOT_NULL or RANGE assertion."""
        return self.not_null or self.min is not None or self.max is not None

    @model_validator(mode="after")
    def _range_ordered(self) -> Thresholds:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is above max ({self.max}); swap them")
        return self


_KEYS = set(Thresholds.model_fields)
DAY_MS = 86_400_000


class DetectConfig:
    """Thresholds resolved per pipeline/operator/feature, plus the window length."""

    def __init__(self, raw: dict[str, Any] | None = None, source: str = "defaults") -> None:
        raw = raw or {}
        self.source = source
        unknown = set(raw) - {"detect", "defaults", "features", "pipelines"}
        if unknown:
            raise ValueError(
                f"{source}: unknown table(s) {sorted(unknown)}; "
                "use [detect], [defaults], [features.NAME] or [pipelines.ID]"
            )
        detect = dict(raw.get("detect", {}))
        window = detect.pop("window", "5m")
        if detect:
            raise ValueError(f"{source}: [detect] takes only 'window', not {sorted(detect)}")
        self.window_ms = window_ms(window)
        if DAY_MS % self.window_ms:
            raise ValueError(
                f"{source}: [detect] window {window!r} must divide a day (5m, 10m, 15m, 1h...) "
                "so that yesterday's and last week's same window line up"
            )
        self.window = window
        self._layers: dict[tuple[str, str, str], dict[str, Any]] = {}
        self._resolved: dict[tuple[str, str, str], Thresholds] = {}
        self._add(("", "", ""), raw.get("defaults", {}), "[defaults]")
        for feature, table in raw.get("features", {}).items():
            self._add(("", "", feature), table, f"[features.{feature}]")
        for pipeline, table in raw.get("pipelines", {}).items():
            table = dict(table)
            operators = table.pop("operators", {})
            features = table.pop("features", {})
            self._add((pipeline, "", ""), table, f"[pipelines.{pipeline}]")
            for operator, t in operators.items():
                self._add(
                    (pipeline, operator, ""), t, f"[pipelines.{pipeline}.operators.{operator}]"
                )
            for feature, t in features.items():
                self._add((pipeline, "", feature), t, f"[pipelines.{pipeline}.features.{feature}]")
        for pipeline, operator, feature in self._layers:  # fail now, not mid-detection
            self.thresholds(pipeline, operator, feature)
        self.default = self.thresholds()

    def _add(self, key: tuple[str, str, str], table: dict[str, Any], where: str) -> None:
        wrong = set(table) - _KEYS
        if wrong:
            raise ValueError(
                f"{self.source} {where}: unknown threshold(s) {sorted(wrong)}; "
                f"known: {', '.join(sorted(_KEYS))}"
            )
        self._layers[key] = dict(table)

    def thresholds(self, pipeline: str = "", operator: str = "", feature: str = "") -> Thresholds:
        """Resolved once per subject: every detection run asks for the same ones."""
        key = (pipeline, operator, feature)
        if key not in self._resolved:
            self._resolved[key] = self._resolve(pipeline, operator, feature)
        return self._resolved[key]

    def _resolve(self, pipeline: str, operator: str, feature: str) -> Thresholds:
        layers = [("", "", "")]
        if feature:
            layers.append(("", "", feature))
        layers.append((pipeline, "", ""))
        if operator:
            layers.append((pipeline, operator, ""))
        if feature:
            layers.append((pipeline, "", feature))
        merged: dict[str, Any] = {}
        for key in layers:
            merged.update(self._layers.get(key, {}))
        try:
            return Thresholds(**merged)
        except ValidationError as exc:
            raise ValueError(f"{self.source}: {exc}") from exc

    def widest_rolling(self) -> int:
        """The most windows any rolling baseline needs."""
        values = [t["rolling_windows"] for t in self._layers.values() if "rolling_windows" in t]
        return max([self.default.rolling_windows, *values])


def load(path: Path | str | None) -> DetectConfig:
    """The config in ``path``; without a path, ``faro.toml`` in the working directory
    if there is one, else the defaults."""
    if path is None:
        candidate = Path("faro.toml")
        if not candidate.is_file():
            return DetectConfig()
        path = candidate
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(
            f"threshold file {path} does not exist; create it or drop --config"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path} is not valid TOML: {exc}") from None
    return DetectConfig(raw, str(path))
