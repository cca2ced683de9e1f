"""Analytics attacked from outside, on a real server over loopback: a tenant reaching for another's reports,
scorecards, outcomes, erasures and exports; an integration token trying every door but outcomes; huge and
malformed CSV; ids dressed up with Unicode and whitespace; a queue name that a spreadsheet would run."""
import csv
import io
import time

import pytest
import requests
import socketio

from copilot.security import Tokens
from tests.conftest import AgentClient, own_server
from tests.integration.test_analytics_api import hold, loaded
from tests.integration.test_floor_realtime import LeadClient

SECRET = "analytics-api-secret-0123456789abcdef0123"  # the helpers above sign with it
MAX_BODY = 1024 * 1024


def headers(tenant="acme", role="lead", agent=None):
    return {"Authorization": f"Bearer {Tokens(SECRET).issue(tenant, role, agent or role)}"}


INTEGRATION = headers("acme", "integration", "crm")


def today() -> str:
    return time.strftime("%Y-%m-%d", time.gmtime())


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("analytics-attacks")
    proc = own_server(workdir, SECRET, COPILOT_ANALYTICS_LOAD_MS="50", COPILOT_REPORT_MIN_N="1",
                      COPILOT_MAX_BODY_BYTES=str(MAX_BODY))
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def acme(server):
    """A conversation of tenant acme in the store, with an outcome."""
    cid = f"acme-secret-{time.time_ns()}"
    hold(server.url, cid, True, customer_ref="acme-customer-7")
    loaded(server.url, cid, tenant="acme")
    assert outcomes(server.url, [{"conversation_id": cid, "csat": 5}]).json()["accepted"] == 1
    return cid


def outcomes(url, body, who=INTEGRATION, **kw):
    if isinstance(body, (str, bytes)):
        data = body.encode() if isinstance(body, str) else body
        return requests.post(f"{url}/api/v1/outcomes", data=data, timeout=60,
                             headers={**who, "Content-Type": "text/csv"}, **kw)
    return requests.post(f"{url}/api/v1/outcomes", json=body, headers=who, timeout=60, **kw)


def code(answer) -> str:
    return answer.json()["error"]["code"]


def test_another_tenant_s_lead_sees_none_of_acme_s_reports_or_scorecards(server, acme):
    globex = headers("globex", "lead")
    for name in ("resolution", "outcomes", "cqs", "phrasings", "repeat_contacts"):
        answer = requests.get(f"{server.url}/api/v1/reports/{name}", headers=globex, timeout=10)
        assert answer.status_code == 200 and acme not in answer.text and "billing" not in answer.text, name
    by_agent = requests.get(f"{server.url}/api/v1/scorecards", params={"by": "agent"}, headers=globex, timeout=10)
    assert "amy" not in by_agent.text
    card = requests.get(f"{server.url}/api/v1/scorecards/{acme}", headers=globex, timeout=10)
    assert card.status_code == 404 and code(card) == "not_found"


def test_another_tenant_s_outcomes_erasure_and_export_never_touch_acme(server, acme):
    erased = requests.post(f"{server.url}/api/v1/erasure", json={"conversation_id": acme},
                           headers=headers("globex", "admin"), timeout=30)
    assert erased.status_code == 200 and not any(erased.json()["erased"].values()), erased.text
    assert loaded(server.url, acme, tenant="acme")["scorecard"] is not None
    assert acme in (server.instance / "events.jsonl").read_text(), "globex's erasure reached acme's event log"
    sent = outcomes(server.url, [{"conversation_id": acme, "csat": 1}], who=headers("globex", "integration")).json()
    assert sent["unknown_conversations"]["ids"] == [acme]  # kept as globex's own, never joined to acme's
    for table in ("events", "conversations", "outcomes"):
        answer = requests.get(f"{server.url}/api/v1/export", params={"table": table, "from": today(), "to": today()},
                              headers=headers("globex", "admin"), timeout=30)
        assert answer.status_code == 200 and acme.encode() not in answer.content, table
    audit = requests.get(f"{server.url}/api/v1/erasures", headers=headers("acme", "admin"), timeout=10).json()
    assert audit["erasures"] == [], "globex's erasure is not in acme's audit"
    own = requests.get(f"{server.url}/api/v1/reports/outcomes", params={"metric": "csat", "split": "all"},
                       headers=headers("acme", "lead"), timeout=10).json()
    assert [(row["n"], row["mean"]) for row in own["rows"]] == [(1, 5.0)], "globex's CSAT reached acme's report"
    theirs = requests.get(f"{server.url}/api/v1/reports/outcomes", params={"metric": "csat", "split": "all"},
                          headers=headers("globex", "lead"), timeout=10).json()
    assert theirs["rows"] == [], "an outcome of no known conversation joined another tenant's"


@pytest.mark.parametrize("method, path, kwargs", [
    ("get", "/api/v1/reports/resolution", {}), ("get", "/api/v1/scorecards", {}),
    ("get", "/api/v1/scorecards/c-1", {}), ("post", "/api/v1/erasure", {"json": {"conversation_id": "c-1"}}),
    ("get", "/api/v1/erasures", {}), ("get", "/api/v1/export", {"params": {"table": "events"}}),
    ("get", "/api/v1/phrasings", {}), ("get", "/api/v1/experiments", {}), ("get", "/api/v1/analytics/usage", {}),
    ("get", "/api/v1/analytics/conversations", {}), ("post", "/api/v1/cues", {"json": {"text": "I'm furious"}}),
    ("get", "/api/v1/floor", {}), ("get", "/api/v1/floor/rules", {}), ("get", "/api/v1/tenants", {})])
def test_an_integration_token_is_refused_every_rest_call_but_outcomes(server, method, path, kwargs):
    answer = getattr(requests, method)(server.url + path, headers=INTEGRATION, timeout=10, **kwargs)
    assert answer.status_code == 403 and code(answer) == "forbidden", answer.text
    assert "outcomes" in answer.json()["error"]["message"]


def test_an_integration_token_opens_neither_copilot_nor_floor(server):
    token = Tokens(SECRET).issue("acme", "integration", "crm")
    agent = AgentClient(server.url, token, connect=False)
    with pytest.raises(socketio.exceptions.ConnectionError):
        agent.connect()
    assert agent.wait_for("connect_error")["data"]["code"] == "forbidden"
    lead = LeadClient(server.url, token, connect=False)
    with pytest.raises(socketio.exceptions.ConnectionError):
        lead.connect()
    refused, _ = lead.wait_for("connect_error")
    assert refused["data"]["code"] == "forbidden"


def test_an_agent_connection_cannot_carry_on_as_an_integration_token(server):
    agent = AgentClient(server.url, Tokens(SECRET).issue("acme", "agent", "crm"))
    try:
        refreshed = agent.call("token.refresh", {"token": Tokens(SECRET).issue("acme", "integration", "crm")})
        assert refreshed["ok"] is False and refreshed["error"]["code"] == "forbidden", refreshed
    finally:
        agent.close()


def test_an_agent_may_not_post_outcomes(server):
    answer = outcomes(server.url, [{"conversation_id": "c-1", "csat": 5}], who=headers("acme", "agent", "amy"))
    assert answer.status_code == 403 and code(answer) == "forbidden"


def test_a_body_past_the_size_limit_is_refused_with_a_code(server):
    huge = "conversation_id,csat\n" + "".join(f"c-{n},5\n" for n in range(MAX_BODY // 8))
    answer = outcomes(server.url, huge)
    assert answer.status_code == 413 and code(answer) == "payload_too_large"


def test_more_rows_than_the_cap_are_one_error_and_the_rows_before_it_land(server):
    text = "conversation_id\n" + "a\n" * 200_001  # 400 KB: under the body limit, one row past the cap
    body = outcomes(server.url, text).json()
    assert [(e["line"], e["code"]) for e in body["errors"]] == [(200_002, "invalid_outcome")]
    assert body["accepted"] == 1 and body["unknown_conversations"]["ids"] == ["a"]  # the same id, last one wins


def test_a_hundred_and_fifty_thousand_bad_rows_list_a_thousand_errors_and_count_them_all(server):
    text = "conversation_id,csat\n" + "c-1,9\n" * 150_000
    body = outcomes(server.url, text).json()
    assert (body["accepted"], body["rejected"], len(body["errors"])) == (0, 150_000, 1000)
    assert body["errors"][0] == {"line": 2, "code": "invalid_outcome", "message": body["errors"][0]["message"]}


@pytest.mark.parametrize("text", [
    "", "\n\n\n", "csat\n5\n",  # nothing, blank lines, no conversation_id column
    "conversation_id,csat,csat\nc-1,5,4\n",  # a column twice
    "conversation_id,csat\n\"c-1,5\n",  # a quote never closed
    "conversation_id,csat\nc-1,5\x00\n",  # a NUL
    "conversation_id,csat,favourite_colour\nc-1,5,blue\n",  # an unknown column must not drop a score silently
    "conversation_id;csat\nc-1;5\n",  # the wrong separator
    "conversation_id,csat\n" + "x" * 100_000 + ",5\n",  # one enormous cell
    "conversation_id,csat\n\"" + "x" * 200_000 + "\",5\n",  # one past the csv module's field limit
])
def test_malformed_csv_is_a_coded_answer_and_lands_nothing(server, text):
    answer = outcomes(server.url, text)
    assert answer.status_code in (200, 400), answer.text[:300]
    body = answer.json()
    if answer.status_code == 400:
        assert code(answer) == "invalid_payload" and body["error"]["message"]
    else:
        assert body["accepted"] == 0 and body["errors"] and body["errors"][0]["line"] >= 2, body


@pytest.mark.parametrize("trick", [
    "c\u200b-1",  # a zero-width space
    "\uff43-1",  # a full-width c
    "c-1\u202e",  # a right-to-left override
    "c-\x001", "c -1", "c\u00a0-1",  # a NUL, a space and a no-break space inside
    "=HYPERLINK(\"http://evil\")",  # a formula
    "c" * 129,  # one past the protocol's 128
])
def test_ids_dressed_up_with_unicode_or_whitespace_are_refused_by_index_never_stored(server, acme, trick):
    sent = outcomes(server.url, [{"conversation_id": trick, "csat": 1}, {"conversation_id": acme, "csat": 5}])
    assert sent.status_code == 200, sent.text
    body = sent.json()
    assert body["accepted"] == 1 and [e["index"] for e in body["errors"]] == [0]
    assert trick not in body["unknown_conversations"]["ids"]


@pytest.mark.parametrize("pad", [" ", "\t", "\n", "\u00a0", "\u2028", "\u3000"])
def test_an_id_padded_with_whitespace_is_the_same_id_never_a_new_one(server, acme, pad):
    body = outcomes(server.url, [{"conversation_id": f"{pad}{acme}{pad}", "csat": 5}]).json()
    assert (body["accepted"], body["unknown_conversations"]["count"], body["errors"]) == (1, 0, [])
    as_csv = outcomes(server.url, f'conversation_id,csat\n"{pad}{acme}{pad}",5\n').json()
    assert (as_csv["accepted"], as_csv["unknown_conversations"]["count"], as_csv["errors"]) == (1, 0, [])


def test_a_tricked_scorecard_path_is_invalid_not_a_lookup(server):
    for path in ("c%E2%80%8B-1", "%EF%BD%83-1", "c-1%0A", "c" * 129):
        answer = requests.get(f"{server.url}/api/v1/scorecards/{path}", headers=headers(), timeout=10)
        assert answer.status_code == 400 and code(answer) == "invalid_payload", path


def test_a_queue_a_spreadsheet_would_run_is_quoted_in_a_csv_report(server):
    cid = f"formula-{time.time_ns()}"
    agent = AgentClient(server.url, Tokens(SECRET).issue("acme", "agent", "amy"))
    try:
        queue = "=HYPERLINK(\"http://evil.example\")"
        assert agent.call("conversation.start", {"conversation_id": cid, "channel": "chat", "queue": queue})["ok"]
        assert agent.say(cid, "s1", "I'm absolutely furious about this bill")["ok"]
        assert agent.call("conversation.end", {"conversation_id": cid})["ok"]
    finally:
        agent.close()
    loaded(server.url, cid, tenant="acme")
    answer = requests.get(f"{server.url}/api/v1/reports/resolution", params={"by": "queue", "format": "csv"},
                          headers=headers(), timeout=10)
    queues = [row["queue"] for row in csv.DictReader(io.StringIO(answer.text))]
    assert "'" + queue in queues and queue not in queues


def test_bad_report_parameters_are_coded_refusals(server):
    for name, params, status, want in [
            ("resolution", {"by": "weather"}, 400, "invalid_payload"),
            ("resolution", {"from": "2024-13-01"}, 400, "invalid_payload"),
            ("resolution", {"from": "2024-02-02", "to": "2024-02-01"}, 400, "invalid_payload"),
            ("resolution", {"queue": "x" * 129}, 400, "invalid_payload"),
            ("outcomes", {"metric": "salary"}, 400, "invalid_payload"),
            ("outcomes", {"split": "mood"}, 400, "invalid_payload"),
            ("salaries", {}, 404, "not_found")]:
        answer = requests.get(f"{server.url}/api/v1/reports/{name}", params=params, headers=headers(), timeout=10)
        assert (answer.status_code, code(answer)) == (status, want), (name, params, answer.text)


def test_the_admin_only_operations_fuzzed_as_an_admin_never_answer_a_server_error(server):
    """Schemathesis as the lead fuzzer (tests/reliability) does, with an admin's token: the lead's run only ever
    reaches the role check of erasure and export."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis.checks import not_a_server_error

    schema = schemathesis.openapi.from_url(server.url + "/api/v1/openapi.json")
    admin = headers("fuzz", "admin")
    operations = [result.ok() for result in schema.get_all_operations()
                  if result.ok().path in ("/api/v1/erasure", "/api/v1/erasures", "/api/v1/export", "/api/v1/outcomes")]
    assert len(operations) == 4
    for operation in operations:
        @settings(max_examples=30, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck),
                  database=None)
        @given(case=operation.as_strategy())
        def check(case):
            response = case.call(base_url=server.url, headers=admin, timeout=60)
            case.validate_response(response, checks=[not_a_server_error])
            if response.status_code >= 400:
                assert response.json()["error"]["code"]
        check()
    assert server.process.poll() is None


def test_a_customer_ref_logged_redacted_cannot_erase_every_customer_who_shares_the_redaction(server):
    run = time.time_ns()
    for n, ref in enumerate(["jo@example.com", "sam@example.com"]):
        hold(server.url, f"email-ref-{run}-{n}", True, customer_ref=ref)
    loaded(server.url, f"email-ref-{run}-1")
    answer = requests.post(f"{server.url}/api/v1/erasure", json={"customer_ref": "jo@example.com"},
                           headers=headers("acme", "admin"), timeout=30)
    assert answer.status_code == 400 and code(answer) == "invalid_payload"
    assert "[EMAIL]" in answer.json()["error"]["message"] and "jo@example.com" not in answer.json()["error"]["message"]
    assert loaded(server.url, f"email-ref-{run}-1")["scorecard"] is not None
    assert f"email-ref-{run}-1" in (server.instance / "events.jsonl").read_text()
