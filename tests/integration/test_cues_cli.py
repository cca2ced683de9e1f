"""The command-line contract of python -m copilot.cues, run as a user runs it."""
import csv
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


def small_data(folder):
    """A shared-data folder in miniature, with the layout eval reads: a few GoEmotions comments, made-up texts
    under the ids our tweet labels name (no real tweet is copied here), and two made-up DailyDialog dialogues."""
    go = folder / "goemotions"
    go.mkdir(parents=True)
    labels = (ROOT / "index" / "model" / "labels.json").read_text()
    (go / "emotions.txt").write_text("\n".join(json.loads(labels)) + "\n")
    rows = ["I am so angry right now\t2\ta1", "thank you, that is kind\t15\ta2", "the sky is blue\t27\ta3",
            "this makes no sense to me\t6\ta4"]
    (go / "test.tsv").write_text("\n".join(rows) + "\n")
    ids = [json.loads(line)["tweet_id"] for half in ("dev", "test")
           for line in (ROOT / "data" / "cues_eval" / "tweets" / f"{half}.jsonl").read_text().splitlines()]
    made_up = ["still no reply, third time I've asked", "where is the store?", "thanks, all sorted", "ugh AGAIN"]
    cs = folder / "customer-support"
    cs.mkdir()
    with (cs / "twcs_inbound_threads.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["tweet_id", "text"])
        writer.writerows([i, made_up[n % len(made_up)]] for n, i in enumerate(ids))
    dd = folder / "dailydialog" / "test"
    dd.mkdir(parents=True)
    (dd / "dialogues_test.txt").write_text("Hi there . __eou__ I'm furious ! __eou__\nWhere to ? __eou__ Home . __eou__\n")
    (dd / "dialogues_emotion_test.txt").write_text("0 1\n0 0\n")
    return folder


def test_eval_prints_every_evaluation_beside_the_peers_and_ends_with_headline_json(tmp_path):
    out = cli("eval", "--data", str(small_data(tmp_path)))
    assert out.returncode == 0, out.stderr
    for part in ("BERT", "twelve cues", "Real customer tweets, dev half", "Real customer tweets, test half",
                 "DailyDialog test", "Hard negatives", "VADER <= -0.05", "NRCLex", "Targets"):
        assert part in out.stdout, part
    headline = json.loads(out.stdout.strip().splitlines()[-1])
    assert {"goemotions_macro_f1_28", "cs_macro_f1_12_cues", "tweets_test_macro_f1", "hard_negatives_fire_rate",
            "dailydialog_test_none_false_alarms", "dailydialog_test_conversational_rate"} <= set(headline)
    assert 0 <= headline["hard_negatives_fire_rate"] <= 1


def test_eval_says_where_the_shared_data_should_be_when_it_is_missing(tmp_path):
    out = cli("eval", "--data", str(tmp_path / "nowhere"))
    assert out.returncode != 0 and "nowhere" in out.stderr
