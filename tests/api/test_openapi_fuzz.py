"""Property-based fuzzing of every endpoint from the OpenAPI schema: no 5xx, ever.

Schemathesis generates valid and invalid requests from /openapi.json; the
store behind the app holds the generated dataset, so reads hit real data.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.specs.openapi.checks import response_schema_conformance

from faro.api import create_app
from faro.core.avro_codec import encode_container
from faro.core.settings import FaroSettings
from tests.api.dataset import generate, seed
from tests.store.events import store_times
from tests.strategies import capture_events

# /ingest bodies: real Avro containers of arbitrary events, and arbitrary bytes.
schemathesis.openapi.media_type(
    "application/avro",
    st.one_of(
        st.lists(capture_events(store_times), max_size=4).map(encode_container),
        st.binary(max_size=300),
    ),
)
# Schemathesis reads the schema at import, so the store is made here too, not in a fixture.
_store = Path(tempfile.mkdtemp(prefix="faro-fuzz-"))
atexit.register(shutil.rmtree, _store, ignore_errors=True)
seed(_store, generate(seed=3))
app = create_app(_store, FaroSettings(ingest_max_bytes=64 * 1024))
schema = schemathesis.openapi.from_asgi("/openapi.json", app)


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_request_makes_the_api_fail(case: schemathesis.Case) -> None:
    response = case.call()
    assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.text}"
    if response.status_code == 200:
        case.validate_response(response, checks=[response_schema_conformance])
