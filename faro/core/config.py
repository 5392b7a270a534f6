"""What an operator should capture: which features, and how to read them from records."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from faro.core.events import DataClassification, FeatureValueType, parse_enum

Extractor = Callable[[Any], Any] | str
"""A function of the record, or the name of a field (dict key, Row field or attribute)."""


@dataclass(frozen=True)
class FaroFeatureConfig:
    """How to read one feature from the records an operator sees.

    ``feature_value`` alone gives per-flush value statistics (AGGREGATE).
    Adding ``entity_key`` also emits sampled per-record ENTITY events, unless
    ``classification`` is PERSONAL or SENSITIVE, in which case the feature
    silently stays aggregate-only. Extractors run on the operator's input
    records unless ``on="output"``. Sampling is by a hash of the entity key, so
    ``sample_rate=0.1`` selects the same 10 % of entities in every operator.
    """

    entity_key: Extractor | None = None
    feature_value: Extractor | None = None
    value_type: FeatureValueType = FeatureValueType.SCALAR_DOUBLE
    classification: DataClassification = DataClassification.NON_PERSONAL
    sample_rate: float = 1.0
    on: Literal["input", "output"] = "input"

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "value_type", parse_enum(FeatureValueType, self.value_type, "value_type")
        )
        object.__setattr__(
            self,
            "classification",
            parse_enum(DataClassification, self.classification, "classification"),
        )
        if self.entity_key is not None and self.feature_value is None:
            raise ValueError(
                "entity_key was given without feature_value: ENTITY capture needs both; "
                "add feature_value=<field name or function of the record>"
            )
        for name in ("entity_key", "feature_value"):
            extractor = getattr(self, name)
            if extractor is not None and not (
                callable(extractor) or isinstance(extractor, str) or _is_spark_column(extractor)
            ):
                raise ValueError(
                    f"{name} must be a field name, a function of the record or (for "
                    f"faro.spark) a Column expression, got {type(extractor).__name__}"
                )
        if isinstance(self.sample_rate, bool) or not isinstance(self.sample_rate, (int, float)):
            raise ValueError(f"sample_rate must be a number in [0, 1], got {self.sample_rate!r}")
        if not 0.0 <= self.sample_rate <= 1.0:
            raise ValueError(
                f"sample_rate must be in [0, 1] (0.1 keeps 10 % of entities), "
                f"got {self.sample_rate}"
            )
        if self.on not in ("input", "output"):
            raise ValueError(f"on must be 'input' or 'output', got {self.on!r}")

    @property
    def emits_entities(self) -> bool:
        """True when this feature may produce ENTITY events (before sampling)."""
        return (
            self.entity_key is not None
            and self.sample_rate > 0.0
            and self.classification is DataClassification.NON_PERSONAL
        )


@dataclass(frozen=True)
class FaroConfig:
    """The features one traced operator reports.

    ``FaroConfig(features=["order_count", "revenue_7d"])`` names aggregate-only
    features: their statistics come from emitted records that carry a field of
    that name. A mapping to :class:`FaroFeatureConfig` says how to read each.
    """

    features: Sequence[str] | Mapping[str, FaroFeatureConfig | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        if isinstance(self.features, str):
            raise ValueError(
                f"features must be a list of names or a mapping, got the string {self.features!r}; "
                f"write features=[{self.features!r}]"
            )
        if isinstance(self.features, Mapping):
            resolved = dict(self.features)
        else:
            resolved = {}
            for name in self.features:
                if name in resolved:
                    raise ValueError(f"feature {name!r} is listed twice")
                resolved[name] = None
        for name, spec in resolved.items():
            if not isinstance(name, str) or not name:
                raise ValueError(f"feature names must be non-empty strings, got {name!r}")
            if spec is not None and not isinstance(spec, FaroFeatureConfig):
                raise ValueError(
                    f"feature {name!r} must map to FaroFeatureConfig(...) or None, "
                    f"got {type(spec).__name__}"
                )
        object.__setattr__(
            self,
            "features",
            {
                name: spec or FaroFeatureConfig(feature_value=name, on="output")
                for name, spec in resolved.items()
            },
        )

    @property
    def feature_specs(self) -> dict[str, FaroFeatureConfig]:
        """Every feature with its resolved spec (a bare name reads that field of outputs)."""
        return self.features  # type: ignore[return-value]

    @property
    def feature_names(self) -> list[str]:
        return list(self.feature_specs)


def _is_spark_column(value: Any) -> bool:
    """A pyspark Column, recognised without importing pyspark."""
    cls = type(value)
    return cls.__name__ == "Column" and cls.__module__.startswith("pyspark.sql")
