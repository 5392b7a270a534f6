import pytest

from faro import DataClassification, FaroConfig, FaroFeatureConfig, FeatureValueType


def test_names_only_config_reads_those_fields_of_outputs() -> None:
    config = FaroConfig(features=["order_count", "revenue_7d"])
    assert config.feature_names == ["order_count", "revenue_7d"]
    spec = config.feature_specs["order_count"]
    assert (spec.feature_value, spec.on, spec.entity_key) == ("order_count", "output", None)


def test_strings_are_accepted_for_enums() -> None:
    spec = FaroFeatureConfig(feature_value="v", value_type="SCALAR_LONG", classification="PERSONAL")
    assert spec.value_type is FeatureValueType.SCALAR_LONG
    assert spec.classification is DataClassification.PERSONAL


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"feature_value": "v", "sample_rate": 1.5}, r"sample_rate must be in \[0, 1\]"),
        ({"feature_value": "v", "sample_rate": -0.1}, r"sample_rate must be in \[0, 1\]"),
        ({"feature_value": "v", "sample_rate": "0.1"}, "sample_rate must be a number"),
        ({"entity_key": "user_id"}, "entity_key was given without feature_value"),
        ({"feature_value": "v", "value_type": "FLOAT"}, "value_type must be one of SCALAR_DOUBLE"),
        ({"feature_value": "v", "classification": "SECRET"}, "classification must be one of"),
        ({"feature_value": 3}, "feature_value must be a field name, a function of the record"),
        ({"feature_value": "v", "on": "both"}, "on must be 'input' or 'output'"),
    ],
)
def test_invalid_feature_config_says_what_to_fix(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FaroFeatureConfig(**kwargs)


@pytest.mark.parametrize(
    ("features", "message"),
    [
        ("order_count", r"write features=\['order_count'\]"),
        (["a", "a"], "listed twice"),
        ([""], "non-empty strings"),
        ({"a": 1}, "must map to FaroFeatureConfig"),
    ],
)
def test_invalid_config_says_what_to_fix(features: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FaroConfig(features=features)  # type: ignore[arg-type]


def test_personal_features_never_emit_entities() -> None:
    for classification in (DataClassification.PERSONAL, DataClassification.SENSITIVE):
        spec = FaroFeatureConfig(entity_key="u", feature_value="v", classification=classification)
        assert not spec.emits_entities
    assert FaroFeatureConfig(entity_key="u", feature_value="v").emits_entities
