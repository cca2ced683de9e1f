"""What each module's set-up function builds from the settings (create_app calls them in turn): the conversation
store, the WSGI middleware around the app, and the Redis URL as the log shows it."""
from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from copilot import security
from copilot.concurrency import Pools
from copilot.conversation_store import MemoryConversationStore, open_conversations, redacted_url
from copilot.settings import Settings


def test_a_redis_url_in_the_log_hides_its_password_and_nothing_else():
    assert redacted_url("redis://:s3cret@redis.internal:6379/0") == "redis://:***@redis.internal:6379/0"
    assert redacted_url("redis://copilot:s3cret@redis.internal/1") == "redis://copilot:***@redis.internal/1"
    assert redacted_url("redis://redis.internal:6379/0") == "redis://redis.internal:6379/0"


def test_without_redis_conversations_live_in_memory_over_the_instance_event_log(tmp_path):
    settings = Settings(instance_dir=tmp_path / "instance", keep_ended_s=5, max_live_conversations=7)
    conversations = open_conversations(settings, Pools())
    assert isinstance(conversations, MemoryConversationStore)
    assert (conversations.keep_ended_s, conversations.max_live) == (5, 7)
    assert conversations.log.path == settings.event_log


def test_the_security_headers_wrap_the_app_outermost_and_proxy_fix_only_behind_proxies():
    app = Flask(__name__)
    security.init_app(app, Settings())
    assert isinstance(app.wsgi_app, security.SecurityHeaders)
    assert not isinstance(app.wsgi_app.app, ProxyFix)
    behind = Flask(__name__)
    security.init_app(behind, Settings(proxy_hops=2))
    assert isinstance(behind.wsgi_app, security.SecurityHeaders) and isinstance(behind.wsgi_app.app, ProxyFix)
    assert behind.wsgi_app.app.x_for == 2 and behind.wsgi_app.app.x_proto == 2


def test_the_security_headers_fill_in_what_a_response_lacks_and_keep_what_it_set():
    def engineio(environ, start_response):
        start_response("200 OK", [("Referrer-Policy", "same-origin")])
        return [b"ok"]
    got = {}
    security.SecurityHeaders(engineio)({}, lambda status, headers, exc_info=None: got.update(headers))
    assert got == {"Referrer-Policy": "same-origin", "X-Content-Type-Options": "nosniff"}
