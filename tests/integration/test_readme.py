"""The README's first session, run as written against a live server: what it prints must match what the
README's comments say it prints (a new user compares the two). Its settings and protocol tables match the code."""
import ast
import os
import re
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from copilot.errors import CODES, HTTP_CODES, OTHER_HTTP_CODE
from copilot.protocol import EVENTS, FLOOR_EVENTS, FLOOR_SERVER_EVENTS, SERVER_EVENTS
from copilot.security import Tokens
from copilot.settings import Settings
from tests.conftest import ROOT, own_server

SECRET = "readme-session-secret-0123456789abcdef0123"
README = (ROOT / "README.md").read_text()
SESSION = README.split("## A first session", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]


def documented(event: str) -> dict:
    """The payload the README's comments show for the first `event` line, with `...` items dropped."""
    lines = SESSION.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"# {event} "))
    text = lines[start][len(f"# {event} "):]
    for line in lines[start + 1:]:
        if not line.startswith("#   ") and not line.startswith("#            "):
            break
        text += " " + line[1:].strip()
    text = re.sub(r",\s*\.\.\.\s*(?=[\]}])", "", text).replace("[...]", "[]")
    return ast.literal_eval(text)


def printed(stdout: str, event: str) -> list[dict]:
    return [ast.literal_eval(line[len(event) + 1:]) for line in stdout.splitlines() if line.startswith(event + " ")]


def test_the_readme_first_session_prints_what_the_readme_says(tmp_path):
    server = own_server(tmp_path, SECRET)
    try:
        env = {**os.environ, "TOKEN": Tokens(SECRET).issue("acme", "agent", "amy")}
        done = subprocess.run([sys.executable, "-c", SESSION.replace("http://127.0.0.1:8000", server.url)],
                              capture_output=True, text=True, timeout=120, env=env)
    finally:
        server.stop()
    assert done.returncode == 0, done.stderr[-2000:]
    highlight, want = printed(done.stdout, "cue.highlight")[0], documented("cue.highlight")
    for key in ("snippet_id", "final", "speaker", "text", "triage_level", "line", "mode"):
        assert highlight[key] == want[key], key
    assert [(c["cue"], c["spans"], c["count"]) for c in highlight["cues"]] == \
        [(c["cue"], c["spans"], c["count"]) for c in want["cues"]]
    for got, said in zip(highlight["cues"], want["cues"]):
        assert abs(got["score"] - said["score"]) < 0.05, (got, said)
    assert highlight["tone"]["label"] == want["tone"]["label"]
    push, said = printed(done.stdout, "suggestion.push")[0], documented("suggestion.push")
    assert push["suggestions"][0]["id"] == said["suggestions"][0]["id"]
    assert push["suggestions"][0]["text"] == said["suggestions"][0]["text"], "the card text is the library's"
    assert push["suggestions"][0]["stage"] == said["suggestions"][0]["stage"]
    summary = ast.literal_eval(done.stdout.strip().splitlines()[-1])
    assert summary["max_triage_level"] == 2 and summary["emotional_resolution_rate"] == 1.0
    assert "summary" not in done.stderr and "Traceback" not in done.stderr


def table(section: str, header: str, after: str = "") -> list[list[str]]:
    """The rows of the README table under `## section` (past the text `after`) whose header row starts with
    `header`, as cells."""
    text = README.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    text = text.split(after, 1)[1] if after else text
    lines = text.split(f"\n{header}", 1)[1].split("\n\n", 1)[0].splitlines()[2:]  # past the header and |---|
    return [[cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]] for line in lines]


def shown(default) -> str | None:
    """A setting's default as the README's settings table writes it; None where the table says it in words."""
    if isinstance(default, bool):
        return f"`{str(default).lower()}`"
    if isinstance(default, Path):
        return f"`{default.relative_to(ROOT).as_posix()}`"
    if default == "" or default == ():
        return None
    return f"`{default}`"


def test_the_readme_settings_table_names_every_setting_with_its_default():
    documented = {}
    for names, defaults, _ in table("Settings", "| variable |"):
        for name, default in zip(re.findall(r"`([A-Z_]+)`", names), defaults.split(" / "), strict=True):
            documented[name] = default.strip()
    assert set(documented) == {spec.metadata["env"] for spec in fields(Settings)}
    for spec in fields(Settings):
        said, want = documented[spec.metadata["env"]], shown(spec.default)
        if want is None:  # an empty default is a behaviour ("(generated)", "(same origin only)"), said in words
            assert said.startswith("(") and said.endswith(")"), (spec.name, said)
        else:
            assert said == want, spec.name


@pytest.mark.parametrize("section, events", [("The Socket.IO protocol", EVENTS), ("The live floor", FLOOR_EVENTS)])
def test_the_readme_protocol_table_lists_every_client_event_with_its_fields(section, events):
    rows = table(section, "| event | payload | ack |")
    documented = {re.fullmatch(r"`([a-z._]+)`", event).group(1): payload for event, payload, _ in rows}
    assert set(documented) == set(events)
    for event, spec in events.items():
        payload = documented[event]
        assert re.findall(r"`([a-z_]+\??)`", payload) == \
            [name + ("" if field.required else "?") for name, field in spec.items()], event
        for name, field in spec.items():
            if field.choices:
                listed = re.search(rf"`{name}\??` \(([^)]*)\)", payload).group(1)
                assert tuple(listed.split(", ")) == field.choices, (event, name)


@pytest.mark.parametrize("section, after, events", [
    ("The Socket.IO protocol", "\nServer to client.", SERVER_EVENTS),
    ("The live floor", "Server to a lead:", FLOOR_SERVER_EVENTS)])
def test_the_readme_server_event_table_lists_every_server_event_with_its_fields(section, after, events):
    rows = table(section, "| event | payload |", after=after)
    # a field is a backticked name that opens an item (`cues: [...]` included); `customer` in a remark is not
    documented = {re.fullmatch(r"`([a-z._]+)`", event).group(1): re.findall(r"(?:^|, )`([a-z_]+\??)(?::[^`]*)?`", payload)
                  for event, payload in rows}
    assert documented == {event: list(names) for event, names in events.items()}


def emits_in_the_service() -> list[tuple[str, ast.expr]]:
    """Each (event, payload) the services put in a Reply's emits (copilot/assist.py) or a FloorReply's events for
    the agent (copilot/floor_service.py), read from their source."""
    found = []
    source = "\n".join((ROOT / "copilot" / name).read_text() for name in ("assist.py", "floor_service.py"))
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr in ("append", "extend") \
                and isinstance(func.value, ast.Attribute) and func.value.attr == "emits":
            given = node.args
        elif isinstance(func, ast.Name) and func.id == "Reply":
            given = node.args[2:3] + [keyword.value for keyword in node.keywords if keyword.arg == "emits"]
        elif isinstance(func, ast.Name) and func.id == "FloorReply":
            given = node.args[1:2] + [keyword.value for keyword in node.keywords if keyword.arg == "to_agent"]
        else:
            continue
        for arg in given:
            found += [(sub.elts[0].value, sub.elts[1]) for sub in ast.walk(arg) if isinstance(sub, ast.Tuple)
                      and len(sub.elts) == 2 and isinstance(sub.elts[0], ast.Constant)
                      and isinstance(sub.elts[0].value, str)]
    return found


def test_every_event_the_service_emits_is_in_the_server_event_table_and_each_one_is_emitted():
    emits = emits_in_the_service()
    assert {event for event, _ in emits} == set(SERVER_EVENTS)
    for event, payload in emits:  # a payload written out as a dict holds the table's fields, the optional aside
        if isinstance(payload, ast.Dict) and None not in payload.keys:
            keys = {key.value for key in payload.keys}
            assert {name for name in SERVER_EVENTS[event] if not name.endswith("?")} <= keys, event
            assert keys <= {name.rstrip("?") for name in SERVER_EVENTS[event]}, event


def test_the_readme_error_codes_are_the_codes_the_server_answers_with():
    text = README.split("## The Socket.IO protocol\n", 1)[1].split("\nError codes:", 1)[1].split("\nBehaviour:", 1)[0]
    documented = set(re.findall(r"`([a-z_]+)`", text)) - {"connect_error"}  # Socket.IO's event, not a code
    answered = {code for code, _ in CODES.values()} | set(HTTP_CODES.values()) | {OTHER_HTTP_CODE}
    assert (sorted(documented - answered), sorted(answered - documented)) == ([], [])
