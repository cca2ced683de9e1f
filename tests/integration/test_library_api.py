"""The team-lead REST API over a live server on loopback, against the embedded store and a real Redis."""
import time

import pytest
import requests

from copilot.security import Tokens
from tests.conftest import TEST_SECRET

NEW = {"id": "frustration-investigate-77", "text": "What would a good outcome look like for you today?",
       "cues": ["frustration", "churn_risk"], "stage": "investigate", "channels": ["chat", "voice"],
       "use_when": ["I've had enough of this", "sort it or I'm leaving"]}


@pytest.fixture
def server(library_server):
    return library_server


def auth(role="lead", tenant="acme", agent="lee"):
    return {"Authorization": f"Bearer {Tokens(TEST_SECRET).issue(tenant, role, agent)}"}


def call(server, method, path, role="lead", tenant="acme", **kwargs):
    return requests.request(method, server.url + path, headers=auth(role, tenant), timeout=30, **kwargs)


def test_every_tenant_starts_from_the_shipped_library(server):
    body = call(server, "GET", "/api/v1/phrasings?status=approved", role="agent").json()
    assert body["ok"] and body["count"] >= 200
    assert all(p["status"] == "approved" for p in body["phrasings"])


def test_a_lead_creates_a_draft_edits_it_and_approves_it_with_history_and_audit(server):
    created = call(server, "POST", "/api/v1/phrasings", json={**NEW, "status": "approved"})
    assert created.status_code == 201 and created.json()["phrasing"]["status"] == "draft"
    edited = call(server, "PATCH", f"/api/v1/phrasings/{NEW['id']}",
                  json={"text": "What would a fair outcome look like for you?"}).json()
    assert edited["phrasing"]["version"] == 2
    approved = call(server, "POST", f"/api/v1/phrasings/{NEW['id']}/approve").json()
    assert approved["phrasing"]["status"] == "approved" and approved["phrasing"]["version"] == 3
    versions = call(server, "GET", f"/api/v1/phrasings/{NEW['id']}/versions").json()["versions"]
    assert [v["text"] for v in versions][:2] == [NEW["text"], "What would a fair outcome look like for you?"]
    audit = call(server, "GET", "/api/v1/audit?limit=1000").json()["entries"]
    mine = [(e["action"], e["actor"]) for e in audit if e["phrasing_id"] == NEW["id"]]
    assert mine == [("create", "lee"), ("edit", "lee"), ("approve", "lee")]


def test_retire_and_restore_move_a_phrasing_out_of_and_back_toward_service(server):
    pid = call(server, "GET", "/api/v1/phrasings?status=approved&cue=confusion").json()["phrasings"][0]["id"]
    assert call(server, "POST", f"/api/v1/phrasings/{pid}/retire").json()["phrasing"]["status"] == "retired"
    ids = {p["id"] for p in call(server, "GET", "/api/v1/phrasings?status=approved").json()["phrasings"]}
    assert pid not in ids
    assert call(server, "POST", f"/api/v1/phrasings/{pid}/restore").json()["phrasing"]["status"] == "draft"


def test_invalid_phrasing_lists_every_problem(server):
    reply = call(server, "POST", "/api/v1/phrasings", json={**NEW, "text": "Did you try turning it off?",
                                                            "cues": ["grumpy"]})
    assert reply.status_code == 422
    error = reply.json()["error"]
    assert error["code"] == "invalid_phrasing"
    assert {d["field"] for d in error["details"]} == {"text", "cues"}


def test_near_duplicate_of_an_approved_phrasing_is_reported(server):
    existing = call(server, "GET", "/api/v1/phrasings?status=approved&stage=check-in").json()["phrasings"][0]
    reply = call(server, "POST", "/api/v1/validate", json={**NEW, "id": "dup-check-01", "text": existing["text"]}).json()
    assert existing["id"] in [d["id"] for d in reply["near_duplicates"]]


def test_agents_read_but_may_not_edit(server):
    assert call(server, "GET", "/api/v1/phrasings", role="agent").status_code == 200
    reply = call(server, "POST", "/api/v1/phrasings", role="agent", json=NEW)
    assert reply.status_code == 403 and reply.json()["error"]["code"] == "forbidden"


def test_missing_forged_and_expired_tokens_are_refused(server):
    assert requests.get(server.url + "/api/v1/phrasings", timeout=10).json()["error"]["code"] == "auth_required"
    forged = {"Authorization": f"Bearer {Tokens('other-secret').issue('acme', 'admin', 'x')}"}
    assert requests.get(server.url + "/api/v1/phrasings", headers=forged, timeout=10).json()["error"]["code"] == \
        "invalid_token"
    expired = {"Authorization": f"Bearer {Tokens(TEST_SECRET).issue('acme', 'lead', 'x', now=time.time() - 10**6)}"}
    assert requests.get(server.url + "/api/v1/phrasings", headers=expired, timeout=10).json()["error"]["code"] == \
        "token_expired"


def test_another_tenants_phrasing_is_invisible(server):
    call(server, "POST", "/api/v1/phrasings", json=NEW)
    reply = call(server, "GET", f"/api/v1/phrasings/{NEW['id']}", tenant="globex")
    assert reply.status_code == 404 and reply.json()["error"]["code"] == "unknown_phrasing"


def test_import_is_all_or_nothing_and_reports_every_bad_row(server):
    before = call(server, "GET", "/api/v1/phrasings").json()["count"]
    rows = ("id,text,cues,stage,channels,use_when\n"
            "imp-one-01,What happened when you called last time?,repeat_contact,investigate,chat|voice,i called|again\n"
            "imp-two-02,Is it broken?,frustration,check-in,chat,this is broken|fix it\n"
            "imp-three-03,How has this changed your plans?,urgency,check-in,fax,i need it today|asap\n")
    reply = call(server, "POST", "/api/v1/phrasings/import?format=csv", data=rows.encode())
    assert reply.status_code == 422
    rejected = reply.json()["error"]["details"]
    assert [r["row"] for r in rejected] == [2, 3]
    assert call(server, "GET", "/api/v1/phrasings").json()["count"] == before
    good = rows.splitlines()[0] + "\n" + rows.splitlines()[1] + "\n"
    ok = call(server, "POST", "/api/v1/phrasings/import?format=csv", data=good.encode()).json()
    assert ok["created"] == 1 and call(server, "GET", "/api/v1/phrasings").json()["count"] == before + 1


def test_export_round_trips_through_import(server):
    exported = call(server, "GET", "/api/v1/phrasings/export?format=yaml&status=approved")
    assert exported.status_code == 200 and exported.text.startswith("phrasings:")
    reply = call(server, "POST", "/api/v1/phrasings/import?format=yaml", data=exported.content).json()
    assert reply["ok"] and reply["updated"] >= 200 and reply["created"] == 0


def test_usage_analytics_and_experiment_report_are_served(server):
    created = call(server, "POST", "/api/v1/experiments", json={
        "id": "guidance-ab", "variants": [{"name": "on"}, {"name": "off", "guidance": False}],
        "assign_by": "queue", "queues": {"billing": "off"}})
    assert created.status_code == 201
    report = call(server, "GET", "/api/v1/experiments/guidance-ab/report").json()
    assert [v["variant"] for v in report["variants"]] == ["on", "off"]
    assert call(server, "GET", "/api/v1/experiments/nope/report").json()["error"]["code"] == "not_found"
    usage = call(server, "GET", "/api/v1/analytics/usage?by=cue,queue")
    assert usage.json()["rows"] == []
    assert call(server, "GET", "/api/v1/analytics/usage?format=csv").text.startswith("phrasing_id,shown")


def test_admins_manage_their_own_tenant_and_leads_may_not(server):
    assert call(server, "POST", "/api/v1/tenants", tenant="initech", json={"tenant": "initech"}).status_code == 403
    reply = call(server, "POST", "/api/v1/tenants", role="admin", tenant="initech", json={"tenant": "initech"})
    assert reply.status_code == 201 and reply.json()["phrasings"] >= 200
    assert call(server, "GET", "/api/v1/tenants", role="admin", tenant="initech").json()["tenants"] == ["initech"]


def test_an_admin_of_one_tenant_neither_sees_nor_seeds_another(server):
    assert call(server, "POST", "/api/v1/tenants", role="admin", tenant="acme", json={"tenant": "acme"}).ok
    evil = call(server, "POST", "/api/v1/tenants", role="admin", tenant="evil", json={"tenant": "acme"})
    assert evil.status_code == 403 and evil.json()["error"]["code"] == "forbidden" and "phrasings" not in evil.json()
    assert "acme" not in call(server, "GET", "/api/v1/tenants", role="admin", tenant="evil").json()["tenants"]


@pytest.mark.parametrize("method, path, kwargs, code", [
    ("POST", "/api/v1/phrasings", {"data": "{not json"}, "invalid_payload"),
    ("POST", "/api/v1/phrasings", {"json": [1, 2]}, "invalid_payload"),
    ("GET", "/api/v1/phrasings?status=live", {}, "invalid_payload"),
    ("GET", "/api/v1/audit?after=x", {}, "invalid_payload"),
    ("POST", "/api/v1/phrasings/import?format=xml", {"data": b"x"}, "invalid_payload"),
    ("POST", "/api/v1/phrasings/import?format=yaml", {"data": b"\xff\xfe"}, "invalid_payload"),
    ("POST", "/api/v1/phrasings/import?format=yaml", {"data": b"a: [unclosed"}, "invalid_payload"),
    ("DELETE", "/api/v1/phrasings", {}, "method_not_allowed"),
    ("GET", "/api/v1/nothing-here", {}, "not_found"),
])
def test_bad_requests_get_coded_errors(server, method, path, kwargs, code):
    reply = call(server, method, path, **kwargs)
    assert reply.status_code >= 400 and reply.json()["error"]["code"] == code


def test_an_oversized_body_is_refused(server):
    reply = call(server, "POST", "/api/v1/phrasings/import?format=yaml", data=b"x" * (6 * 1024 * 1024))
    assert reply.status_code == 413 and reply.json()["error"]["code"] == "payload_too_large"


def test_the_openapi_document_validates_and_lists_the_routes(server):
    from openapi_spec_validator import validate

    spec = requests.get(server.url + "/api/v1/openapi.json", timeout=10).json()
    validate(spec)
    routes = {str(r).replace("<phrasing_id>", "{phrasing_id}").replace("<experiment_id>", "{experiment_id}")
              .replace("<name>", "{report}").replace("<conversation_id>", "{conversation_id}").replace("<source>", "{source}")
              for r in server.app.url_map.iter_rules()
              if str(r).startswith("/api/") or str(r) in ("/healthz", "/readyz", "/metrics")}
    documented = set(spec["paths"])
    action_routes = {r for r in routes if "<any" in r}
    assert routes - action_routes <= documented
    assert {f"/api/v1/phrasings/{{phrasing_id}}/{a}" for a in ("approve", "retire", "restore")} <= documented


def test_bulk_approve_is_all_or_nothing(server):
    drafts = [p["id"] for p in call(server, "GET", "/api/v1/phrasings?status=draft").json()["phrasings"]]
    reply = call(server, "POST", "/api/v1/phrasings/bulk", json={"action": "approve", "ids": drafts + ["no-such-id"]})
    assert reply.json()["error"]["code"] == "unknown_phrasing"
    assert call(server, "GET", "/api/v1/phrasings?status=draft").json()["count"] == len(drafts)
    ok = call(server, "POST", "/api/v1/phrasings/bulk", json={"action": "approve", "ids": drafts}).json()
    assert ok["changed"] == len(drafts) and call(server, "GET", "/api/v1/phrasings?status=draft").json()["count"] == 0
