"""The web assets: the agent sidebar, the demo CRM and the team-lead console, all served by the app itself."""
from __future__ import annotations

import ipaddress
import json
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from pathlib import Path

from flask import Blueprint, Response, current_app, jsonify, render_template, request

from copilot.errors import NotFound, RateLimited, error_body
from copilot.security import TokenBucket
from copilot.web.legend import legend

STATIC = Path(__file__).parent / "static"
web = Blueprint("web", __name__, static_folder="static", static_url_path="/web/static", template_folder="templates")
DEMO_TENANT = "demo"
LEGEND = legend()
LOOPBACK_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")
# A CSP source is scheme://host[:port]; anything else (a space, ';', a quote) would add or break a directive.
ORIGIN = re.compile(r"[a-z][a-z0-9+.-]*://[A-Za-z0-9.\-\[\]:]+")
# No 'unsafe-inline' anywhere: every script and style is a file under /web/static. 'self' in connect-src covers
# the page's own ws:// and wss:// origin (CSP Level 3), which is the only server the sidebar talks to. The one
# inline <script> is the legend's JSON data block, which no browser runs.
PAGE_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; object-src 'none'; "
               "base-uri 'none'; form-action 'self'")


def frame_ancestors(origins: Iterable[str]) -> str:
    """The CSP frame-ancestors directive: this origin plus each well-formed allowed origin (the CRMs)."""
    return " ".join(["frame-ancestors 'self'", *(o for o in origins if ORIGIN.fullmatch(o))])


def page_policy(origins: Iterable[str]) -> str:
    """The Content-Security-Policy of every HTML page."""
    return f"{PAGE_POLICY}; {frame_ancestors(origins)}"


def is_loopback(host: str) -> bool:
    """Whether a listening HOST reaches only this machine ("" and 0.0.0.0 listen on every interface)."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class AddressLimits:
    """A token bucket per client address, at most `max_addresses` of them (the least recent is dropped).
    IPv6 addresses share one bucket per /64, which is what one client usually holds."""

    def __init__(self, rate_per_s: float = 10 / 60, burst: int = 5, max_addresses: int = 4096,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate_per_s, self.burst, self.max_addresses, self.clock = rate_per_s, burst, max_addresses, clock
        self.buckets: OrderedDict[str, TokenBucket] = OrderedDict()
        self.lock = threading.Lock()  # the threading server runs requests on several threads

    @staticmethod
    def key(address: str) -> str:
        """The bucket's key: the IPv4 address, or the IPv6 address's /64."""
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return address
        return str(ipaddress.ip_network(f"{ip}/64", strict=False)) if ip.version == 6 else str(ip)

    def take(self, address: str) -> None:
        """Spend one token of this address's bucket or raise RateLimited."""
        key = self.key(address)
        with self.lock:
            bucket = self.buckets.pop(key, None) or TokenBucket(self.rate_per_s, self.burst, self.clock)
            self.buckets[key] = bucket
            while len(self.buckets) > self.max_addresses:
                self.buckets.popitem(last=False)
            bucket.take()


@web.record_once
def _limits(state) -> None:
    state.app.extensions["copilot.demo_token_limits"] = AddressLimits()


@web.context_processor
def page_legend() -> dict:
    """Every page template may include _legend.html, the cue and stage metadata its scripts read."""
    return {"legend": LEGEND}


@web.after_app_request
def security_headers(response: Response) -> Response:
    """HTML pages get the CSP (Referrer-Policy and nosniff go on every response: copilot.security.SecurityHeaders)."""
    if response.mimetype == "text/html":
        response.headers["Content-Security-Policy"] = page_policy(
            current_app.config["COPILOT_SETTINGS"].allowed_origins)
    return response


def allowed_origins() -> str:
    return ",".join(current_app.config["COPILOT_SETTINGS"].allowed_origins)


@web.get("/sidebar")
def sidebar():
    """The agent sidebar, embeddable in a 320-400 px iframe; the token comes in the URL fragment or by postMessage."""
    return render_template("sidebar.html", allowed_origins=allowed_origins())


@web.get("/console")
def console():
    """The team-lead console (it asks for a lead token)."""
    return render_template("console.html")


@web.get("/floor")
def floor():
    """The team lead's live floor board (it asks for a lead token)."""
    return render_template("floor.html")


def demo_enabled() -> None:
    settings = current_app.config["COPILOT_SETTINGS"]
    if not settings.demo:
        raise NotFound("the demo is turned off (COPILOT_DEMO=false)")
    # Its token endpoint hands anyone a working token: off this machine only when asked for. The client's address
    # is checked too, as `gunicorn -b 0.0.0.0:8000` listens everywhere while HOST keeps its loopback default.
    if not (settings.demo_public or (is_loopback(settings.host) and is_loopback(request.remote_addr or ""))):
        raise NotFound("the demo is served on a loopback HOST to local clients only "
                       "(COPILOT_DEMO_PUBLIC=true serves it to everyone)")


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
    """A short-lived agent token for the demo tenant only, a few a minute per client address."""
    demo_enabled()
    try:
        current_app.extensions["copilot.demo_token_limits"].take(request.remote_addr or "")
    except RateLimited:
        error = RateLimited("too many demo tokens from this address; one more every 6 seconds")
        return jsonify(error_body(error)), error.status, {"Retry-After": "6"}
    # An agent id of each visitor's own: two visitors of the demo never see each other's conversations.
    agent = f"demo-{secrets.token_hex(6)}"
    token = current_app.extensions["copilot.tokens"].issue(DEMO_TENANT, "agent", agent, ttl_s=3600)
    return jsonify({"ok": True, "token": token, "tenant": DEMO_TENANT}), 200, {"Cache-Control": "no-store"}
