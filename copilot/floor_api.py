"""REST for the live floor: a lead's snapshot of the board, and the tenant's alert rules. Leads and admins only;
a token only ever reaches its own tenant's floor."""
from __future__ import annotations

from flask import Blueprint, current_app, g, jsonify, request

from copilot.errors import InvalidPayload
from copilot.floor_service import FloorService
from copilot.security import bearer

floor_api = Blueprint("floor", __name__, url_prefix="/api/v1/floor")


def floor() -> FloorService:
    return current_app.extensions["copilot.floor"]


@floor_api.before_request
def authenticate() -> None:
    g.identity = current_app.extensions["copilot.tokens"].verify(bearer(request.headers.get("Authorization")))
    g.identity.require("lead")


@floor_api.get("")
def snapshot():
    """Every live conversation of the tenant (of `queue`, when given), the most at risk first, and their alerts."""
    queue = FloorService.queue_of({"queue": request.args["queue"]} if request.args.get("queue") else {})
    return jsonify({"ok": True, "queue": queue, **floor().snapshot(g.identity, queue)})


@floor_api.get("/rules")
def rules():
    """The tenant's alert rules."""
    return jsonify({"ok": True, "rules": floor().rules_of(g.identity)})


@floor_api.put("/rules")
def change_rules():
    """Merge {"rules": {kind: {enabled?, threshold?}}} onto the tenant's alert rules."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or set(body) != {"rules"}:
        raise InvalidPayload('the body must be {"rules": {kind: {"enabled": ..., "threshold": ...}}}')
    return jsonify({"ok": True, "rules": floor().change_rules(g.identity, body["rules"])})
