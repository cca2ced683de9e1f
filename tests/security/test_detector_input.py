"""Hostile input to the phrase detectors (issue #11, defects 2 and 4): every cue survives whitespace, entity,
invisible and full-width tricks, accents, look-alike letters, blank fillers and reworded or joined phrases, at the
detector and end to end over a real Socket.IO server on loopback; the scan is linear in the text; and the REST cue
endpoint wants a token."""
import statistics
import threading
import time

import pytest
import requests

from copilot.cues.lexicon import find_spans, scan
from copilot.security import Tokens
from tests.conftest import AgentClient, own_server

SECRET = "detector-input-secret-0123456789abcdef0123"
CRISIS = {
    "double space": "I just want to kill  myself",
    "tab": "I just want to kill\tmyself",
    "non-breaking space": "I just want to kill\u00a0myself",
    "&nbsp; entities": "I just want to kill&nbsp;&nbsp;myself",
    "zero-width space inside a word": "I just want to ki\u200bll my\u200bself",
    "zero-width space for a space": "I just want to kill\u200bmyself",
    "full-width letters": "I just want to \uff4b\uff49\uff4c\uff4c\u3000\uff4d\uff59\uff53\uff45\uff4c\uff46",
    "curly apostrophe and a double space": "I don\u2019t  see the point in anything anymore",
    "modifier-letter apostrophe": "I don\u02bct see the point in anything anymore",
    "Cyrillic e": "I just want to kill mys\u0435lf",
    "Cyrillic i": "I just want to k\u0456ll myself",
    "Cyrillic i, dze, e": "I just want to k\u0456ll my\u0455\u0435lf",
    "combining acute": "I just want to kill myse\u0301lf",
    "precomposed accent": "I just want to kill mys\u00e9lf",
    "Hangul filler": "I just want to kill\u3164myself",
    "braille blank": "I just want to kill\u2800myself",
    "tatweel inside a word": "I just want to kil\u0640l myself",
    "halfwidth Hangul filler": "I just want to ki\uffa0ll myself",
}
# Wording and spellings the first rules missed; each with a word its span must cover.
REWORDED = {
    "want to die": ("I just want to die", "die"),
    "wanna die": ("honestly i just wanna die", "die"),
    "take my own life": ("I'm going to take my own life", "life"),
    "overdose": ("I've taken an overdose", "overdose"),
    "overdosed": ("I overdosed last night", "overdosed"),
    "hyphen": ("I want to kill-myself", "myself"),
    "underscore": ("I want to kill_myself", "myself"),
    "dot": ("I want to kill.myself", "myself"),
    "spaced out": ("k i l l  m y s e l f", "m y s e l f"),
}
ABUSE = {
    "Cyrillic o": "you are an idi\u043et",
    "accent": "you are an idi\u00f3t",
    "digits for letters": "u r an id10t",
    "asterisk": "you're so st*pid",
}
NOT_CRISIS = ["I don't want to die on hold waiting for you", "I could die for a coffee right now",
              "I want to die of embarrassment, I sent it to the wrong address", "that will kill my self-esteem",
              "the calls never end. It all started last week", "I overdosed on coffee this morning"]
# One plain phrase per cue; every trick below is applied to it.
PHRASES = {
    "repeat_contact": "this is the third time I've called",
    "escalation_request": "I want to speak to a manager",
    "churn_risk": "I want to cancel my contract",
    "urgency": "I need this sorted by tomorrow",
    "abuse": "you're a useless idiot",
    "crisis": "I just want to kill myself",
    "frustration": "I am sick and tired of this",
    "disappointment": "I expected much more from you",
    "confusion": "I don't understand this bill",
    "anxiety": "I don't know what to do",
    "sadness": "I'm in tears",
    "gratitude": "thank you so much",
}


def wide(text: str) -> str:
    return "".join("\u3000" if c == " " else chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


def split_words(text: str) -> str:
    return " ".join(w[:len(w) // 2] + "\u200b" + w[len(w) // 2:] if len(w) > 3 else w for w in text.split(" "))


TRICKS = {
    "double space": lambda t: t.replace(" ", "  "),
    "tab": lambda t: t.replace(" ", "\t"),
    "non-breaking space": lambda t: t.replace(" ", "\u00a0"),
    "&nbsp;": lambda t: t.replace(" ", "&nbsp;&nbsp;"),
    "zero-width space for a space": lambda t: t.replace(" ", "\u200b"),
    "zero-width space inside words": split_words,
    "full-width": wide,
    "curly apostrophe and newline": lambda t: t.replace("'", "\u2019").replace(" ", " \r\n", 1),
}


@pytest.mark.parametrize("trick", TRICKS)
@pytest.mark.parametrize("cue", PHRASES)
def test_every_cue_survives_whitespace_entity_invisible_and_wide_tricks(cue, trick):
    assert cue in find_spans(PHRASES[cue])
    text = TRICKS[trick](PHRASES[cue])
    spans = find_spans(text).get(cue)
    assert spans, (cue, trick, text)
    assert all(0 <= s < e <= len(text) for s, e in spans)


@pytest.mark.parametrize("text", CRISIS.values(), ids=CRISIS.keys())
def test_the_detector_finds_crisis_behind_every_trick_with_spans_in_the_text_as_sent(detector, text):
    hit = detector.analyse(text).cue("crisis")
    assert hit is not None, text
    marked = "".join(text[s:e] for s, e in hit.spans)
    assert ("my" in marked or "\uff4d" in marked or "point" in marked), (text, hit.spans)


@pytest.mark.parametrize("text, word", REWORDED.values(), ids=REWORDED.keys())
def test_the_detector_finds_crisis_in_reworded_joined_and_spaced_out_phrases(detector, text, word):
    hit = detector.analyse(text).cue("crisis")
    assert hit is not None, text
    assert any(word in text[s:e] for s, e in hit.spans), (text, hit.spans)


@pytest.mark.parametrize("text", ABUSE.values(), ids=ABUSE.keys())
def test_the_detector_finds_abuse_behind_look_alikes_accents_and_leet(detector, text):
    assert detector.analyse(text).cue("abuse") is not None, text


@pytest.mark.parametrize("text", NOT_CRISIS)
def test_the_detector_raises_no_crisis_on_everyday_or_negated_wording(detector, text):
    assert detector.analyse(text).cue("crisis") is None, text


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    proc = own_server(tmp_path_factory.mktemp("detector-input"), SECRET)
    yield proc
    proc.stop()


def test_crisis_behind_every_trick_reaches_triage_3_and_alerts_over_a_live_connection(server):
    client = AgentClient(server.url, Tokens(SECRET).issue("acme", "agent", "amy"))
    try:
        missed = []
        for n, text in enumerate([*CRISIS.values(), *(text for text, _ in REWORDED.values())]):
            cid = f"trick-{n}-{time.time_ns()}"
            assert client.call("conversation.start", {"conversation_id": cid, "channel": "chat"})["ok"]
            assert client.say(cid, "s1", text)["ok"]
            highlight = client.wait_for("cue.highlight", lambda d, cid=cid: d["conversation_id"] == cid)
            alerts = [a for a in client.of("alert") if a["conversation_id"] == cid and a["kind"] == "crisis"]
            if highlight["triage_level"] != 3 or not alerts:
                missed.append(text)
                continue
            crisis, = (c for c in highlight["cues"] if c["cue"] == "crisis")
            assert highlight["text"] == text and all(0 <= s < e <= len(text) for s, e in crisis["spans"])
        assert missed == []
    finally:
        client.close()


def test_the_cue_endpoint_refuses_a_call_without_a_valid_token(server):
    url = server.url + "/api/v1/cues"
    body = {"text": "I just want to kill&nbsp;myself"}
    refused = requests.post(url, json=body, timeout=10)
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "auth_required"
    forged = requests.post(url, json=body, headers={"Authorization": "Bearer " + Tokens("x" * 40).issue(
        "acme", "admin", "eve")}, timeout=10)
    assert forged.status_code == 401 and forged.json()["error"]["code"] == "invalid_token"
    answered = requests.post(url, json=body, timeout=30, headers={
        "Authorization": "Bearer " + Tokens(SECRET).issue("acme", "agent", "amy")})
    assert answered.status_code == 200 and "crisis" in {c["cue"] for c in answered.json()["cues"]}


def test_long_texts_posted_to_the_cue_endpoint_do_not_hold_up_another_tenants_snippets(server):
    """Four clients of one tenant post the costliest 4,000-character text for four seconds; another tenant's
    snippets are acknowledged about as fast as before (the old server, scanning on the event loop: 946 ms)."""
    client = AgentClient(server.url, Tokens(SECRET).issue("globex", "agent", "gus"))
    hostile, token = ("sad," * 1000)[:4000], Tokens(SECRET).issue("initech", "agent", "eve")
    cid = f"busy-{time.time_ns()}"
    assert client.call("conversation.start", {"conversation_id": cid, "channel": "chat"})["ok"]

    def ack_time(sid: str) -> float:
        start = time.perf_counter()
        assert client.say(cid, sid, "I'm so worried about my bill")["ok"]
        return time.perf_counter() - start

    def post_until(stop: float) -> None:
        with requests.Session() as session:
            while time.time() < stop:
                session.post(server.url + "/api/v1/cues", json={"text": hostile}, timeout=30,
                             headers={"Authorization": "Bearer " + token})
    try:
        quiet = statistics.median(ack_time(f"q{n}") for n in range(8))
        stop = time.time() + 4
        posters = [threading.Thread(target=post_until, args=(stop,)) for _ in range(4)]
        for poster in posters:
            poster.start()
        time.sleep(0.3)
        busy, n = [], 0
        while time.time() < stop - 0.3:
            busy.append(ack_time(f"b{n}"))
            n += 1
        for poster in posters:
            poster.join(30)
    finally:
        client.close()
    assert statistics.median(busy) < 3 * quiet + 0.15, (quiet, busy)


def costs(short: str, long: str, rounds: int = 3) -> tuple[float, float]:
    """The best time of scan on each text, measured side by side so that a busy machine slows both alike."""
    best_short = best_long = float("inf")
    for _ in range(rounds):
        for text in (short, short, long):
            start = time.perf_counter()
            scan(text)
            took = time.perf_counter() - start
            if text is long:
                best_long = min(best_long, took)
            else:
                best_short = min(best_short, took)
    return best_short, best_long


# The inputs that cost the old scan most: a match checked for negation every few characters, after many clause
# breaks (each check rescanned the text from the start); invisible characters that add a second reading; and
# characters whose compatibility form is longer (U+FDFA is 18 letters); and look-alike letters, accents, fillers,
# letters spaced out and words joined by punctuation, which the later rules read.
HOSTILE = ["sad,", "mad, ", "thank ", "not\u00a0angry ", "a ", "still ", "you ", "1 ", "ki\u200bll ", "\ufb01",
           "\ufdfa", "\u2026", "\u043e\u0440 ", "k\u0456ll ", "e\u0301", "a\u3164", "k i l l ", "kill.", "a_"]


@pytest.mark.parametrize("unit", HOSTILE)
def test_the_scan_is_linear_in_the_text(unit):
    short, long = (unit * 400)[:400], (unit * 4000)[:4000]
    scan(short), scan(long)  # warm the caches
    # Linear is a ratio of about 10; the old negation check made it 30 to 60 on the first four inputs. A shared
    # machine may spoil one measurement, never three in a row.
    tries = []
    for _ in range(3):
        cost_short, cost_long = costs(short, long)
        tries.append((round(cost_short * 1000, 1), round(cost_long * 1000, 1)))
        if cost_long < 20 * cost_short and cost_long < 0.25:
            return
    raise AssertionError(f"scan of {unit!r} * n is not linear: (ms at 400, ms at 4,000) {tries}")
