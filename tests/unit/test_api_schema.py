"""Property-based: schemathesis drives every operation of /openapi.json; no answer is a 5xx.

It runs against the app in-process with the stub daemon of ``test_api_app`` (every run answers
at once with a canned report), so that hundreds of generated requests never start real runs on
the shared Docker engine; the real daemon's API is covered by tests/integration/test_api.py.
Examples are bounded so the whole file takes a few seconds.

Three of schemathesis's checks do not apply and are left out: ``unsupported_method`` (``GET
/v1/update`` answers on purpose, for Watchtower users' scripts, but is kept out of the schema),
``positive_data_acceptance`` (the schema cannot express the image reference grammar: a string
that is no reference is answered 422 by design) and ``negative_data_rejection`` (a "wrong type"
query value such as ``image=false`` is still a valid string, and here a valid reference).
Every other default check runs, ``not_a_server_error`` first among them.
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import (
    negative_data_rejection,
    positive_data_acceptance,
    unsupported_method,
)

from tests.unit.test_api_app import TOKEN, StubDaemon
from watchkeeper.api.app import create_app

APP = create_app(StubDaemon().backend())
SCHEMA = schemathesis.openapi.from_asgi("/openapi.json", APP)


@SCHEMA.parametrize()
@settings(max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck))
def test_api_schema_no_server_error_with_token(case: schemathesis.Case) -> None:
    """Any request the schema allows, with the token, answers below 500 and as documented."""
    case.call_and_validate(
        headers={"Authorization": f"Bearer {TOKEN}"},
        excluded_checks=[unsupported_method, positive_data_acceptance, negative_data_rejection],
    )


@SCHEMA.parametrize()
@settings(max_examples=15, deadline=None, database=None, suppress_health_check=list(HealthCheck))
def test_api_schema_no_server_error_without_token(case: schemathesis.Case) -> None:
    """Without a token no generated request causes a 5xx either."""
    assert case.call().status_code < 500
