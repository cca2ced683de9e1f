"""A transcript source in the test process: the /ingest handlers through Flask-SocketIO's test client and
POST /api/v1/transcripts through Flask's, against a tenant rate small enough to run out within one batch."""
import pytest

from copilot.realtime import NAMESPACE as COPILOT
from copilot.realtime_ingest import NAMESPACE as INGEST
from copilot.security import Tokens
from tests.conftest import TEST_SECRET

pytestmark = pytest.mark.inprocess

TENANT_BURST = 4


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """The app with a tenant rate of TENANT_BURST events and hardly any refill."""
    from copilot import create_app
    from copilot.settings import Settings

    app = create_app(Settings(instance_dir=tmp_path_factory.mktemp("ingest") / "instance", secret=TEST_SECRET,
                              async_mode="threading", cooldown_s=0, tenant_rate_per_s=1,
                              tenant_rate_burst=TENANT_BURST))
    yield app
    app.extensions["copilot.analytics"].stop()


def token(role="integration", agent="crm", tenant="acme"):
    return Tokens(TEST_SECRET).issue(tenant, role, agent)


def utterance(cid, uid, text="I'm furious about this bill", final=True):
    return {"conversation_id": cid, "utterance_id": uid, "speaker": "customer", "text": text, "final": final}


def test_once_the_tenants_rate_is_spent_the_rest_of_the_batch_and_its_end_are_rate_limited(app):
    socketio = app.extensions["socketio"]
    source = socketio.test_client(app, namespace=INGEST, auth={"token": token(tenant="slow")})
    body = {"start": True, "utterances": [utterance("c-1", f"u{i}") for i in range(TENANT_BURST + 2)],
            "end": ["c-1"]}
    answer = source.emit("transcripts", body, namespace=INGEST, callback=True)
    assert (answer["ok"], answer["accepted"], answer["started"], answer["ended"]) == (False, TENANT_BURST, ["c-1"], [])
    assert [(e.get("index"), e.get("end"), e["code"]) for e in answer["errors"]] == [
        (TENANT_BURST, None, "rate_limited"), (TENANT_BURST + 1, None, "rate_limited"), (None, 0, "rate_limited")]


def test_the_rest_answer_is_the_stream_answer(app):
    socketio = app.extensions["socketio"]
    amy = socketio.test_client(app, namespace=COPILOT, auth={"token": token("agent", "amy")})
    assert amy.emit("conversation.start", {"conversation_id": "c-2", "channel": "voice"}, namespace=COPILOT,
                    callback=True)["ok"]
    source = socketio.test_client(app, namespace=INGEST, auth={"token": token()})
    body = [utterance("c-2", "u1", "I'm furious", final=False), utterance("c-2", "u1")]
    by_stream = source.emit("transcripts", body, namespace=INGEST, callback=True)
    by_rest = app.test_client().post("/api/v1/transcripts", json=body,
                                     headers={"Authorization": f"Bearer {token()}"}).get_json()
    assert by_stream == {"ok": True, "accepted": 2, "duplicates": 0, "started": [], "ended": [], "ignored": 0,
                         "errors": []}
    assert by_rest == {**by_stream, "accepted": 0, "duplicates": 2}  # the same batch again: its final is a repeat
    highlights = [e["args"][0] for e in amy.get_received(COPILOT) if e["name"] == "cue.highlight"]
    assert [(h["snippet_id"], h["final"]) for h in highlights] == [("u1", True)]
