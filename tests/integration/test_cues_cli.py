"""The command-line contract of python -m copilot.cues, run as a user runs it."""
import json
import subprocess
import sys

from tests.conftest import ROOT


def cli(*args, stdin=""):
    return subprocess.run([sys.executable, "-m", "copilot.cues", *args], cwd=ROOT, input=stdin,
                          capture_output=True, text=True, timeout=120)


def test_text_argument_prints_cues_scores_and_words():
    out = cli("This is the third time I've called and I want to speak to a manager")
    assert out.returncode == 0
    assert "repeat_contact" in out.stdout and "'third time'" in out.stdout
    assert "escalation_request" in out.stdout


def test_score_writes_one_json_line_per_input_line():
    lines = [{"text": "I want to cancel my account, I'm fed up"}, {"text": "what are your opening hours"}]
    out = cli("score", stdin="".join(json.dumps(x) + "\n" for x in lines))
    results = [json.loads(line) for line in out.stdout.splitlines()]
    assert out.returncode == 0 and len(results) == 2
    first = results[0]
    assert first["text"] == lines[0]["text"] and len(first["emotions"]) == 28
    churn = next(c for c in first["cues"] if c["cue"] == "churn_risk")
    start, end = churn["spans"][0]
    assert "cancel my account" in first["text"][start:end] and 0 < churn["score"] <= 1
    assert results[1]["cues"] == []


def test_score_reports_a_bad_line_and_goes_on():
    out = cli("score", stdin='not json\n{"text": 5}\n{"text": "thanks a lot"}\n')
    results = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r.get("error", {}).get("code") for r in results[:2]] == ["invalid_line", "invalid_line"]
    assert results[2]["text"] == "thanks a lot"
    assert out.returncode == 1


def test_eval_prints_tables_beside_the_paper_and_ends_with_headline_json(tmp_path):
    data = tmp_path / "goemotions"
    data.mkdir()
    labels = (ROOT / "index" / "model" / "labels.json").read_text()
    (data / "emotions.txt").write_text("\n".join(json.loads(labels)) + "\n")
    rows = ["I am so angry right now\t2\ta1", "thank you, that is kind\t15\ta2", "the sky is blue\t27\ta3",
            "this makes no sense to me\t6\ta4"]
    (data / "test.tsv").write_text("\n".join(rows) + "\n")
    out = cli("eval", "--goemotions", str(data))
    assert out.returncode == 0, out.stderr
    assert "BERT" in out.stdout and "gratitude" in out.stdout and "twelve cues" in out.stdout
    headline = json.loads(out.stdout.strip().splitlines()[-1])
    assert {"goemotions_macro_f1_28", "goemotions_macro_f1_6_cues", "cs_macro_f1_12_cues"} <= set(headline)
    assert headline["cs_examples"] >= 150
