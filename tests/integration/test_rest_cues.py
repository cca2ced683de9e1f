"""The REST cue endpoint and health checks, through the Flask app with the real model."""
import pytest

from copilot import create_app
from copilot.security import Tokens
from copilot.settings import Settings
from tests.conftest import TEST_SECRET


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    app = create_app(Settings(max_text_chars=200, secret=TEST_SECRET, instance_dir=tmp_path_factory.mktemp("instance"),
                              async_mode="threading"))  # in this process, which gevent has not patched
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = "Bearer " + Tokens(TEST_SECRET).issue("acme", "agent", "amy")
    return client


def test_health_and_readiness_answer_ok(client):
    assert client.get("/healthz").get_json() == {"ok": True}
    assert client.get("/readyz").get_json()["ok"] is True


def test_cues_endpoint_returns_cues_with_spans(client):
    body = client.post("/api/v1/cues", json={"text": "I want to cancel my contract and I need it done today"}).get_json()
    assert body["ok"] is True
    assert {"churn_risk", "urgency"} <= {c["cue"] for c in body["cues"]}


@pytest.mark.parametrize("payload, code, status", [
    (None, "invalid_payload", 400),
    ({"text": 12}, "invalid_payload", 400),
    ({"words": "hi"}, "invalid_payload", 400),
    ({"text": "x" * 201}, "text_too_long", 413),
])
def test_bad_input_gets_a_coded_error(client, payload, code, status):
    response = client.post("/api/v1/cues", data="not json" if payload is None else None,
                           json=payload, content_type="application/json")
    assert response.status_code == status
    assert response.get_json()["error"]["code"] == code


@pytest.mark.parametrize("path", ["/api/v1/cues", "/api/v1/validate"])
def test_json_nested_too_deep_is_a_coded_400_not_a_500(client, path):
    body = "[" * 100_000 + "]" * 100_000
    lead = {"Authorization": "Bearer " + Tokens(TEST_SECRET).issue("acme", "lead", "lee")}
    reply = client.post(path, data=body, content_type="application/json", headers=lead)
    assert reply.status_code == 400 and reply.get_json()["error"]["code"] == "invalid_payload", reply.get_data()[:300]
