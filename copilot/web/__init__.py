"""The web assets: the agent sidebar, the demo CRM and the team-lead console, all served by the app itself."""
from __future__ import annotations

import json
from pathlib import Path

from flask import Blueprint, current_app, jsonify, render_template

from copilot.errors import NotFound

STATIC = Path(__file__).parent / "static"
web = Blueprint("web", __name__, static_folder="static", static_url_path="/web/static", template_folder="templates")
DEMO_TENANT = "demo"


def allowed_origins() -> str:
    return ",".join(current_app.config["COPILOT_SETTINGS"].allowed_origins)


@web.get("/sidebar")
def sidebar():
    """The agent sidebar, embeddable in a 320-400 px iframe."""
    return render_template("sidebar.html", allowed_origins=allowed_origins())


@web.get("/console")
def console():
    """The team-lead console (it asks for a lead token)."""
    return render_template("console.html")


def demo_enabled() -> None:
    if not current_app.config["COPILOT_SETTINGS"].demo:
        raise NotFound("the demo is turned off (COPILOT_DEMO=false)")


@web.get("/demo")
def demo():
    """A pretend CRM replaying a conversation into the sidebar."""
    demo_enabled()
    return render_template("demo.html")


@web.get("/demo/conversation")
def demo_conversation():
    demo_enabled()
    return jsonify(json.loads((STATIC / "demo-conversation.json").read_text()))


@web.post("/demo/token")
def demo_token():
    """A short-lived agent token for the demo tenant only."""
    demo_enabled()
    token = current_app.extensions["copilot.tokens"].issue(DEMO_TENANT, "agent", "demo-agent", ttl_s=3600)
    return jsonify({"ok": True, "token": token, "tenant": DEMO_TENANT})
