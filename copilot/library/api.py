"""REST API for the suggestion library: curation, bulk files, history, audit, usage and experiments.

Thin handlers: authenticate, validate the request's shape, call the Library service, return JSON. Every error
is {"ok": false, "error": {"code", "message", "details"?}}. Roles: agents read, leads edit and approve, admins
manage tenants. A token only ever reaches its own tenant's library.
"""
from __future__ import annotations

import csv
import io

from flask import Blueprint, Response, current_app, g, jsonify, request

from copilot.errors import Forbidden, InvalidPayload
from copilot.library.files import UnreadableFile
from copilot.library.phrasing import CHANNELS, ID_PATTERN, STAGES, STATUSES
from copilot.security import TENANT_PATTERN, Identity, bearer

library_api = Blueprint("library", __name__, url_prefix="/api/v1")


def library():
    return current_app.extensions["copilot.library"]


def identity() -> Identity:
    return g.identity


@library_api.before_request
def authenticate() -> None:
    g.identity = current_app.extensions["copilot.tokens"].verify(bearer(request.headers.get("Authorization")))
    g.identity.require("agent")  # an integration token reads no library


def json_body() -> dict:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise InvalidPayload("the body must be a JSON object")
    return data


def phrasing_reply(phrasing, duplicates=None, status: int = 200):
    body = {"ok": True, "phrasing": phrasing.as_dict()}
    if duplicates is not None:
        body["near_duplicates"] = duplicates
    return jsonify(body), status


@library_api.get("/phrasings")
def list_phrasings():
    """List the tenant's phrasings, filtered by status, cue, stage, channel; `q` searches by meaning."""
    args = request.args
    for name, allowed in (("status", STATUSES), ("stage", STAGES), ("channel", CHANNELS)):
        if name in args and args[name] not in allowed:
            raise InvalidPayload(f"{name} must be one of {', '.join(allowed)}")
    if args.get("q"):
        if len(args["q"]) > 500:
            raise InvalidPayload("q is at most 500 characters")
        found = [(p, s) for p, s in library().search(identity().tenant, args["q"], k=25)]
        items = [{**p.as_dict(), "similarity": round(s, 3)} for p, s in found]
    else:
        items = [p.as_dict() for p in sorted(library().phrasings(identity().tenant).values(), key=lambda p: p.id)]
    items = [i for i in items if all(
        args.get(k) is None or (args[k] in i[k] if isinstance(i[k], list) else args[k] == i[k])
        for k in ("status", "stage")) and (args.get("cue") is None or args["cue"] in i["cues"])
        and (args.get("channel") is None or args["channel"] in i["channels"])]
    return jsonify({"ok": True, "count": len(items), "phrasings": items})


@library_api.get("/phrasings/<phrasing_id>")
def get_phrasing(phrasing_id: str):
    return phrasing_reply(library().get(identity().tenant, phrasing_id))


@library_api.post("/phrasings")
def create_phrasing():
    phrasing, duplicates = library().create(identity(), json_body())
    return phrasing_reply(phrasing, duplicates, 201)


@library_api.route("/phrasings/<phrasing_id>", methods=["PUT", "PATCH"])
def edit_phrasing(phrasing_id: str):
    phrasing, duplicates = library().edit(identity(), phrasing_id, json_body())
    return phrasing_reply(phrasing, duplicates)


@library_api.post("/phrasings/<phrasing_id>/<any(approve, retire, restore):action>")
def change_status(phrasing_id: str, action: str):
    return phrasing_reply(library().set_status(identity(), phrasing_id, action))


@library_api.post("/phrasings/bulk")
def bulk_status():
    """approve, retire or restore many phrasings at once, all or nothing: {"action": ..., "ids": [...]}."""
    data = json_body()
    ids = data.get("ids")
    if data.get("action") not in ("approve", "retire", "restore"):
        raise InvalidPayload("action must be approve, retire or restore")
    if not isinstance(ids, list) or not ids or len(ids) > 20_000 or not all(isinstance(i, str) for i in ids):
        raise InvalidPayload("ids must be a list of 1 to 20,000 phrasing ids")
    changed = library().set_status_many(identity(), ids, data["action"])
    return jsonify({"ok": True, "changed": len(changed)})


@library_api.get("/phrasings/<phrasing_id>/versions")
def versions(phrasing_id: str):
    history = library().history(identity().tenant, phrasing_id)
    return jsonify({"ok": True, "versions": [v.as_dict() for v in history]})


@library_api.post("/validate")
def validate():
    """Check a phrasing without saving it: problems, or near-duplicates if it passes."""
    identity().require("lead")
    phrasing, duplicates = library().validate(identity().tenant, {"status": "draft", **json_body()})
    return jsonify({"ok": True, "phrasing": phrasing.as_dict(), "near_duplicates": duplicates})


def file_format() -> str:
    fmt = request.args.get("format") or ("csv" if "csv" in (request.content_type or "") else "yaml")
    if fmt not in ("yaml", "csv"):
        raise InvalidPayload("format must be yaml or csv")
    return fmt


@library_api.post("/phrasings/import")
def import_phrasings():
    """Bulk import, all or nothing; the error lists the first 100 rejected rows and counts them all."""
    try:
        body = request.get_data(as_text=False).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidPayload("the file must be UTF-8 text") from None
    try:
        return jsonify({"ok": True, **library().import_rows(identity(), body, file_format())})
    except UnreadableFile as error:
        raise InvalidPayload(str(error)) from None


@library_api.get("/phrasings/export")
def export_phrasings():
    fmt = file_format()
    status = request.args.get("status")
    if status is not None and status not in STATUSES:
        raise InvalidPayload(f"status must be one of {', '.join(STATUSES)}")
    body = library().export(identity().tenant, fmt, status)
    mime = "text/csv" if fmt == "csv" else "application/yaml"
    return Response(body, mimetype=mime,
                    headers={"Content-Disposition": f"attachment; filename=phrasings.{fmt}"})


@library_api.get("/audit")
def audit():
    """One page of the tenant's audit log, of one phrasing when `phrasing_id` is given."""
    identity().require("lead")
    phrasing_id = request.args.get("phrasing_id")
    if phrasing_id is not None and not ID_PATTERN.fullmatch(phrasing_id):
        raise InvalidPayload("phrasing_id is not a phrasing id (a-z, 0-9, - and _, 3 to 64 characters)")
    try:
        after = int(request.args.get("after", 0))
        limit = int(request.args.get("limit", 100))
    except ValueError:
        raise InvalidPayload("after and limit must be whole numbers") from None
    if not 0 <= after < 2**62 or limit < 1:
        raise InvalidPayload("after must be 0 or more and limit at least 1")  # found by schemathesis: SQLite overflow
    limit = min(limit, 1000)
    entries = library().audit(identity().tenant, after, limit, phrasing_id)
    return jsonify({"ok": True, "entries": [e.as_dict() for e in entries]})


@library_api.get("/analytics/usage")
def usage():
    """Shown, used, dismissed and helpful counts, sliced by the `by` keys; JSON or CSV."""
    identity().require("lead")
    by = tuple(request.args.get("by", "phrasing_id").split(","))
    if not by or not set(by) <= {"phrasing_id", "cue", "queue", "channel"}:
        raise InvalidPayload("by is a comma list of phrasing_id, cue, queue, channel")
    table = library().usage_table(identity().tenant, by)
    if request.args.get("format") == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=[*by, "shown", "used", "dismissed", "helpful", "not_helpful",
                                                 "acceptance_rate"])
        writer.writeheader()
        writer.writerows(table)
        return Response(out.getvalue(), mimetype="text/csv")
    return jsonify({"ok": True, "by": list(by), "rows": table})


@library_api.get("/analytics/conversations")
def conversation_analytics():
    """Cue mentions and emotional resolution per day, from the analytics store (queried off the loop)."""
    who = identity()
    who.require("lead")
    trends = current_app.extensions["copilot.analytics"].conversation_trends(who.tenant)
    return jsonify({"ok": True, **trends})


@library_api.get("/experiments")
def list_experiments():
    items = library().experiments(identity().tenant)
    return jsonify({"ok": True, "experiments": sorted(items.values(), key=lambda e: e["id"])})


@library_api.post("/experiments")
def put_experiment():
    """Define or redefine an experiment (variant names are fixed once it has exposures)."""
    experiment = library().put_experiment(identity(), json_body())
    return jsonify({"ok": True, "experiment": experiment.as_dict()}), 201


@library_api.get("/experiments/<experiment_id>/report")
def experiment_report(experiment_id: str):
    identity().require("lead")
    return jsonify({"ok": True, **library().experiment_report(identity().tenant, experiment_id)})


@library_api.get("/tenants")
def list_tenants():
    """The caller's own tenant, if its library is seeded: a token never learns of another tenant, admin or not
    (tenants come into being with their first token, `python -m copilot token --tenant ...`)."""
    who = identity()
    who.require("admin")
    return jsonify({"ok": True, "tenants": [who.tenant] if library().seeded(who.tenant) else []})


@library_api.post("/tenants")
def create_tenant():
    """Seed the caller's own tenant's library from the shipped one (an admin of one tenant cannot touch another)."""
    who = identity()
    who.require("admin")
    name = json_body().get("tenant")
    if not isinstance(name, str) or not TENANT_PATTERN.fullmatch(name):
        raise InvalidPayload("tenant must be 1-40 lower-case letters, digits or '-'")
    if name != who.tenant:
        raise Forbidden(f"an admin of {who.tenant} manages only {who.tenant}")
    count = len(library().phrasings(name))
    return jsonify({"ok": True, "tenant": name, "phrasings": count}), 201
