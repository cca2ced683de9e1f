"""Schemathesis against our own OpenAPI document: every REST operation, fuzzed from its schema, by a lead of one
tenant, against a live server on loopback. No request may produce a server error, and every error is coded.

(Schemathesis' pytest plugin does not load under pytest 9 here, so the test drives its strategies itself.)
"""
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from copilot.security import Tokens
from tests.servers import ServerProcess

SECRET = "schemathesis-secret-0123456789abcdef012"
HEADERS = {"Authorization": f"Bearer {Tokens(SECRET).issue('fuzz', 'lead', 'lee')}"}
EXAMPLES = 25


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("schemathesis")
    server = ServerProcess({"COPILOT_SECRET": SECRET, "COPILOT_INSTANCE_DIR": str(workdir / "instance")}, workdir)
    yield server
    server.stop()


def test_no_rest_operation_ever_answers_with_a_server_error(live):
    schema = schemathesis.openapi.from_url(live.url + "/api/v1/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20
    calls = []
    for operation in operations:
        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck),
                  database=None)
        @given(case=operation.as_strategy())
        def check(case):
            response = case.call(base_url=live.url, headers=HEADERS, timeout=60)
            case.validate_response(response, checks=[not_a_server_error])
            calls.append(response.status_code)
            content_type = response.headers.get("content-type") or [""]
            content_type = content_type[0] if isinstance(content_type, list) else content_type
            if response.status_code >= 400 and content_type.startswith("application/json"):
                body = response.json()
                assert body["ok"] is False and body["error"]["code"]
        check()
    assert len(calls) >= len(operations) and live.process.poll() is None
