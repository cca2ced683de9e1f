"""The committed ONNX cue model, loaded and run as serving runs it."""
import json
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import ROOT


def test_model_loads_and_runs_with_torch_unimportable():
    code = ("import sys; sys.modules['torch'] = None\n"
            "from copilot.cues import load_detector\n"
            "d = load_detector()\n"
            "a = d.analyse('I am so angry, this is the third time I have called')\n"
            "print(','.join(a.cue_names), d.model.output_names)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert "repeat_contact" in out.stdout and "frustration" in out.stdout
    assert "'cues'" in out.stdout and "'evidence'" in out.stdout


def test_one_pass_gives_28_probabilities_and_a_unit_embedding(detector):
    encoded = detector.model.encode(["where is my parcel?", "thank you so much, that's a relief"])
    assert encoded.emotions.shape == (2, 28) and encoded.embeddings.shape == (2, 384)
    assert np.allclose(np.linalg.norm(encoded.embeddings, axis=1), 1.0, atol=1e-4)
    assert ((encoded.emotions >= 0) & (encoded.emotions <= 1)).all()


def test_passes_on_a_thread_pool_give_the_same_analysis_as_inline_ones(detector):
    from concurrent.futures import ThreadPoolExecutor

    from copilot.cues import load_detector

    with ThreadPoolExecutor(2) as pool:
        pooled = load_detector(executor=pool)
        for text in ["I'm furious, this is the third time I've called", "ok thanks", "I don't understand the bill"]:
            inline, on_pool = detector.analyse(text), pooled.analyse(text)
            assert inline.cue_names == on_pool.cue_names
            assert [h.spans for h in inline.cues] == [h.spans for h in on_pool.cues]
            assert np.array_equal(inline.embedding, on_pool.embedding)


TEXTS = ["hi", "I've been waiting three weeks for a refund and nobody answers my emails"]


def test_batched_and_single_inference_agree_exactly_in_fp32():
    from copilot.cues.model import FP32_GRAPH, CueModel

    model = CueModel(graph=FP32_GRAPH)
    batch = model.encode(TEXTS)
    for row, text in enumerate(TEXTS):
        one = model.encode([text])
        assert np.allclose(one.emotions[0], batch.emotions[row], atol=1e-4)
        assert np.allclose(one.embeddings[0], batch.embeddings[row], atol=1e-4)


def test_a_text_scores_exactly_the_same_alone_or_in_any_batch(detector):
    texts = [*TEXTS, "why is this the THIRD time?? unbelievable", "ok"]
    batch = detector.model.encode(texts)
    for row, text in enumerate(texts):
        one = detector.model.encode([text])
        assert np.array_equal(one.emotions[0], batch.emotions[row])
        assert np.array_equal(one.cues[0], batch.cues[row])
        assert np.array_equal(one.embeddings[0], batch.embeddings[row])
    reordered = detector.model.encode(texts[::-1])
    assert np.array_equal(reordered.cues[::-1], batch.cues)


def test_the_cli_scores_a_text_as_the_detector_does(detector):
    texts = ["I've called three times and it's STILL broken", "thanks, that's sorted", "where is my parcel?"]
    lines = "".join(json.dumps({"text": t}) + "\n" for t in texts)
    out = subprocess.run([sys.executable, "-m", "copilot.cues", "score"], input=lines, cwd=ROOT,
                         capture_output=True, text=True, check=True)
    for text, line in zip(texts, out.stdout.splitlines()):
        served = detector.analyse(text)
        scored = json.loads(line)
        assert [c["cue"] for c in scored["cues"]] == list(served.cue_names)
        assert scored["emotions"] == {k: round(v, 4) for k, v in served.emotions.items()}


def test_one_pass_gives_cue_and_evidence_heads_with_token_offsets(detector):
    text = "this is the third time I've called and I'm furious"
    encoded = detector.model.encode([text])
    assert encoded.cues.shape == (1, 12) and detector.model.cues[0] == "frustration"
    tokens = encoded.evidence[0]
    assert tokens.shape == (len(encoded.offsets[0]), 12) and ((tokens >= 0) & (tokens <= 1)).all()
    assert all(0 <= s <= e <= len(text) for s, e in encoded.offsets[0])


def test_served_int8_graph_agrees_with_the_fp32_export():
    from copilot.cues.model import FP32_GRAPH, INT8_GRAPH, CueModel

    texts = ["I'm absolutely furious about this bill", "thank you so much", "where is my parcel?"]
    fp32, int8 = CueModel(graph=FP32_GRAPH).encode(texts), CueModel(graph=INT8_GRAPH).encode(texts)
    assert (np.argmax(fp32.emotions, 1) == np.argmax(int8.emotions, 1)).all()
    assert ((fp32.embeddings * int8.embeddings).sum(1) > 0.9).all()


@pytest.mark.parametrize("text, cue, words", [
    ("I'm absolutely furious about this bill", "frustration", "furious"),
    ("thank you so much, you've been really helpful", "gratitude", "thank you so much"),
    ("I really don't understand why I was charged twice", "confusion", "don't understand"),
    ("I'm so worried my card has been used by someone else", "anxiety", "worried"),
])
def test_emotional_cue_fires_with_the_words_that_carried_it(detector, text, cue, words):
    hit = detector.analyse(text).cue(cue)
    assert hit is not None, detector.analyse(text)
    assert words in [text[s:e] for s, e in hit.spans]


@pytest.mark.parametrize("text", [
    "where is my parcel?",
    "can you update my address to 14 elm street please",
    "what time do you close on saturday",
])
def test_plain_requests_raise_no_negative_cue(detector, text):
    assert detector.analyse(text).cues == ()


def test_similar_requests_embed_closer_than_unrelated_ones(detector):
    a, b, c = detector.model.embed(["my parcel has not arrived yet", "where is my delivery",
                                    "I would like to change my password"])
    assert a @ b > a @ c + 0.1
