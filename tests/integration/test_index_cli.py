"""`python -m copilot.index build|eval`, run as the README runs it: the command line lives in the library package,
the module name it is run by stays."""
import json
import subprocess
import sys

from copilot.index import PhrasingIndex
from tests.servers import ROOT


def index_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "copilot.index", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


def test_build_writes_an_index_of_every_approved_shipped_phrasing(tmp_path):
    out = index_cli("build", "--out", str(tmp_path))
    assert out.returncode == 0, out.stderr
    built = PhrasingIndex.load(tmp_path)
    shipped = json.loads((ROOT / "index" / "phrasings.json").read_text())
    assert f"indexed {len(built)} approved phrasings" in out.stdout
    assert sorted(built.entries) == sorted(entry["id"] for entry in shipped["entries"])


def test_eval_reports_the_three_systems_on_the_retrieval_eval_set():
    out = index_cli("eval")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.splitlines()[-1])
    assert result["lines"] == len((ROOT / "data" / "retrieval" / "retrieval_eval.jsonl").read_text().splitlines())
    assert {"ours", "random_cue_only", "random_cue_channel_stage"} <= set(result)
