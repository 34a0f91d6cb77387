"""Property-based API conformance: every operation in /api/schema/, with generated
parameters and bodies, answers without a server error and with a body that matches
the schema it documents (schemathesis, in-process through the WSGI app)."""

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token
from rest_framework.settings import api_settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
)

from usage_portal.wsgi import application

schema = schemathesis.openapi.from_wsgi("/api/schema/", application)
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]


@pytest.fixture
def in_test_transaction():
    """Requests go through the real WSGI app; like Django's test client, keep it from
    closing the test's database connection at the end of each request."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def token(users, monkeypatch, in_test_transaction):
    # Generated requests come fast; throttling is tested on its own.
    monkeypatch.setitem(api_settings.DEFAULT_THROTTLE_RATES, "ingest", "100000/min")
    monkeypatch.setitem(api_settings.DEFAULT_THROTTLE_RATES, "read", "100000/min")
    from rest_framework.throttling import SimpleRateThrottle

    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", api_settings.DEFAULT_THROTTLE_RATES)
    return Token.objects.create(user=users["manager_a"]).key


@schema.parametrize()
@settings(
    max_examples=15,
    derandomize=True,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_conforms_to_its_schema(case, token):
    response = case.call(headers={"Authorization": f"Token {token}"})
    case.validate_response(response, checks=CHECKS)
