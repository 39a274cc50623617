"""schemathesis against the server's own OpenAPI description, on a live server with the demo models:
no request, valid or not, may get a 5xx or a response that contradicts the description."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import positive_data_acceptance

from server.app import create_app
from server.settings import Settings


@pytest.fixture(scope="module")
def base_url(demo_engines, live_server):
    limits = Settings(host="127.0.0.1", max_tokens_limit=4, default_max_tokens=4, max_audio_seconds=5)
    with live_server(create_app(limits, demo_engines)) as url:
        yield url


# The OpenAPI description does not depend on the loaded models, so it is built without them.
schema = schemathesis.openapi.from_dict(create_app(Settings()).openapi())


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_api(case, base_url):
    # Every check but positive_data_acceptance: no schema can say which bytes are decodable audio, so
    # a schema-valid request may rightly get a 400 (and an unknown model a 404).
    case.call_and_validate(base_url=base_url, timeout=60, excluded_checks=[positive_data_acceptance])
