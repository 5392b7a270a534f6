"""The reference pages say what the code does: every setting and every endpoint
is documented, with the defaults and parameters the code has, and nothing
documented is missing from the code."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from faro.api import create_app
from faro.core.settings import FaroSettings

DOCS = Path(__file__).resolve().parent.parent / "docs"


def _table_rows(page: str) -> list[list[str]]:
    rows = []
    for line in (DOCS / page).read_text().splitlines():
        if line.startswith("| `"):
            rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_configuration_lists_every_setting_with_its_default() -> None:
    documented = {row[0].strip("`"): row[1].strip("`") for row in _table_rows("configuration.md")}
    expected = {}
    for name, field in FaroSettings.model_fields.items():
        default: Any = field.default
        expected[f"FARO_{name.upper()}"] = "unset" if default is None else str(default)
    assert documented == expected


@pytest.fixture(scope="module")
def openapi(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return create_app(tmp_path_factory.mktemp("store")).openapi()


def _documented_endpoints() -> dict[tuple[str, str], str]:
    """(method, path) -> the row's text, from the endpoint table of api.md."""
    endpoints = {}
    for row in _table_rows("api.md"):
        match = re.fullmatch(r"`(GET|POST) ([^`?\[]+)[^`]*`", row[0])
        if match:
            endpoints[(match[1].lower(), match[2])] = " | ".join(row)
    return endpoints


def test_api_page_lists_every_endpoint(openapi: dict[str, Any]) -> None:
    served = {(method, path) for path, ops in openapi["paths"].items() for method in ops}
    assert set(_documented_endpoints()) == served


def test_api_page_names_every_query_parameter(openapi: dict[str, Any]) -> None:
    missing = []
    for (method, path), text in _documented_endpoints().items():
        for parameter in openapi["paths"][path][method].get("parameters", []):
            named = re.search(rf"\b{re.escape(parameter['name'])}\b", text)
            if parameter["in"] == "query" and not named:
                missing.append(f"{method.upper()} {path}: {parameter['name']}")
    assert missing == []


def test_the_flink_page_lists_every_wrapper() -> None:
    from faro.flink import FaroFlink

    documented = {row[0].strip("`") for row in _table_rows("flink.md")}
    wrappers = {name for name in vars(FaroFlink) if name.endswith("_trace")}
    assert documented == wrappers
