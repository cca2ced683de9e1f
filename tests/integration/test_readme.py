"""The README's first session, run as written against a live server: what it prints must match what the
README's comments say it prints (a new user compares the two)."""
import ast
import os
import re
import subprocess
import sys

from copilot.security import Tokens
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
