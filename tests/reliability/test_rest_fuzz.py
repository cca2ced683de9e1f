"""Schemathesis against our own OpenAPI document: every REST operation, fuzzed from its schema, by a lead of one
tenant, against a live server on loopback. No request may produce a server error."""
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from bench.servers import ServerProcess
from copilot.security import Tokens

SECRET = "schemathesis-secret"
HEADERS = {"Authorization": f"Bearer {Tokens(SECRET).issue('fuzz', 'lead', 'lee')}"}


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("schemathesis")
    server = ServerProcess({"COPILOT_SECRET": SECRET, "COPILOT_INSTANCE_DIR": str(workdir / "instance")}, workdir)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def api_schema(live):
    return schemathesis.openapi.from_url(live.url + "/api/v1/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_rest_operation_ever_answers_with_a_server_error(case, live):
    response = case.call(base_url=live.url, headers=HEADERS, timeout=60)
    case.validate_response(response, checks=[not_a_server_error])
    if response.status_code >= 400 and response.headers.get("content-type", "").startswith("application/json"):
        body = response.json()
        assert body["ok"] is False and body["error"]["code"]
