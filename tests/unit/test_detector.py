"""The firing rule and evidence spans of the detector, over a stand-in encoder (pure logic only)."""
import re

import numpy as np

from copilot.cues.detector import CueDetector, Thresholds, fires
from copilot.cues.model import Encoded

LABELS = ["anger", "annoyance", "disgust", "disapproval", "disappointment", "confusion", "fear", "nervousness",
          "sadness", "grief", "gratitude", "relief", "neutral"]


class KeywordEncoder:
    """Gives 'annoyance' 0.9 to any text holding the word 'grr', and 0.05 to everything else."""

    labels = LABELS

    def __init__(self, base=0.05):
        self.base = base
        self.calls = 0
        self.seen: list[str] = []
        self.started = 0

    def encode(self, texts):
        self.calls += 1
        self.seen.extend(texts)
        probs = np.full((len(texts), len(LABELS)), self.base, dtype=np.float32)
        for row, text in enumerate(texts):
            if "grr" in text:
                probs[row, LABELS.index("annoyance")] = 0.9
        return Encoded(probs, np.zeros((len(texts), 384), dtype=np.float32))

    encode_here = encode

    def start(self, texts):
        self.started += 1
        result = self.encode(texts)
        return lambda: result


THRESHOLDS = Thresholds(cues={c: 0.5 for c in ("frustration", "disappointment", "confusion", "anxiety", "sadness",
                                                 "gratitude")}, support=0.5, labels={})


def test_cue_fires_at_its_threshold_and_not_below():
    assert fires(0.5, 0.5, False, 0.5)
    assert not fires(0.49, 0.5, False, 0.5)


def test_evidence_words_lower_the_bar_to_the_support_factor():
    assert fires(0.3, 0.5, True, 0.5)
    assert not fires(0.2, 0.5, True, 0.5)


def test_model_cue_without_lexicon_words_gets_occlusion_spans():
    detector = CueDetector(KeywordEncoder(), THRESHOLDS)
    text = "well grr again"
    hit = detector.analyse(text).cue("frustration")
    assert hit is not None and [text[s:e] for s, e in hit.spans] == ["grr"]


def test_occlusion_of_a_long_text_uses_a_few_windows_that_hold_the_word():
    encoder = KeywordEncoder()
    detector = CueDetector(encoder, THRESHOLDS)
    text = "so this morning I opened the letter and honestly grr is all I can say about the whole thing"
    hit = detector.analyse(text).cue("frustration")
    (start, end), = hit.spans
    assert "grr" in text[start:end] and len(text[start:end].split()) <= 5


def test_interim_analysis_skips_occlusion():
    encoder = KeywordEncoder()
    hit = CueDetector(encoder, THRESHOLDS).analyse("well grr again", explain=False).cue("frustration")
    assert hit.spans == () and encoder.calls == 1


def test_lexicon_spans_are_used_when_they_exist_and_skip_occlusion():
    encoder = KeywordEncoder()
    detector = CueDetector(encoder, THRESHOLDS)
    text = "grr this is ridiculous"
    hit = detector.analyse(text).cue("frustration")
    assert [text[s:e] for s, e in hit.spans] == ["ridiculous"]
    assert encoder.calls == 1


def test_weak_model_score_with_no_evidence_fires_nothing():
    analysis = CueDetector(KeywordEncoder(base=0.3), THRESHOLDS).analyse("where is my parcel")
    assert analysis.cues == ()


def test_conversational_cues_come_with_their_spans_and_full_score():
    text = "this is the third time I've called"
    hit = CueDetector(KeywordEncoder(), THRESHOLDS).analyse(text).cue("repeat_contact")
    assert hit.score == 1.0 and text[hit.spans[0][0]:hit.spans[0][1]] == "third time"


def test_a_batch_gives_one_analysis_per_text_in_order():
    texts = ["grr", "thank you so much", "fine"]
    analyses = CueDetector(KeywordEncoder(), THRESHOLDS).analyse_many(texts)
    assert [a.text for a in analyses] == texts


def test_the_model_reads_the_normal_form_and_occlusion_spans_point_into_the_original():
    encoder = KeywordEncoder()
    text = "well&nbsp;&nbsp;g\u200brr\tagain"
    hit = CueDetector(encoder, THRESHOLDS).analyse(text).cue("frustration")
    assert encoder.seen[0] == "well grr again"
    assert [text[s:e] for s, e in hit.spans] == ["g\u200brr"]


def test_analysis_here_runs_every_pass_on_the_calling_thread():
    encoder = KeywordEncoder()
    analysis = CueDetector(encoder, THRESHOLDS).analyse("well grr again", here=True)
    assert analysis.cue("frustration").spans and encoder.calls == 2 and encoder.started == 0


def test_phrase_spans_in_a_batch_point_into_each_original_text():
    texts = ["I want to cancel\u00a0\u00a0my contract", "I just want to kill&nbsp;myself", "fine"]
    analyses = CueDetector(KeywordEncoder(), THRESHOLDS).analyse_many(texts)
    assert [texts[0][s:e] for s, e in analyses[0].cue("churn_risk").spans] == ["want to cancel\u00a0\u00a0my contract"]
    assert [texts[1][s:e] for s, e in analyses[1].cue("crisis").spans] == ["kill&nbsp;myself"]
    assert [a.text for a in analyses] == texts and analyses[2].cues == ()


# --- A graph with cue heads: the model decides where a phrase is ambiguous, spans come from the same pass -----------

from copilot.cues.detector import token_spans  # noqa: E402
from copilot.cues.taxonomy import CUES  # noqa: E402


class HeadEncoder:
    """A stand-in for a graph with cue heads: each cue's head score is set per test, and the evidence head marks
    the token "grr" for every cue. Tokens are words and punctuation marks, with their offsets."""

    labels = LABELS
    cues = list(CUES)

    def __init__(self, **heads):
        self.heads = heads
        self.calls = 0

    def encode(self, texts):
        self.calls += 1
        probs = np.full((len(texts), len(LABELS)), 0.05, dtype=np.float32)
        cues = np.array([[self.heads.get(c, 0.0) for c in CUES] for _ in texts], dtype=np.float32)
        evidence, offsets = [], []
        for text in texts:
            spans = [(m.start(), m.end()) for m in re.finditer(r"\w+|[^\w\s]", text)]
            offsets.append(((0, 0), *spans, (0, 0)))
            marks = np.zeros((len(spans) + 2, len(CUES)), dtype=np.float32)
            for i, (s, e) in enumerate(spans, 1):
                if text[s:e] == "grr":
                    marks[i] = 0.9
            evidence.append(marks)
        return Encoded(probs, np.zeros((len(texts), 384), np.float32), cues, tuple(evidence), tuple(offsets))

    encode_here = encode

    def start(self, texts):
        result = self.encode(texts)
        return lambda: result


LIMITS = Thresholds(cues={c: 0.5 for c in ("frustration", "disappointment", "confusion", "anxiety", "sadness",
                                             "gratitude")}, support=0.5, labels={}, score="cue_head",
                    check={"urgency": 0.4, "crisis": 0.4}, model={"repeat_contact": 0.8, "urgency": 0.9, "crisis": 0.9},
                    overrule={"abuse": 0.05, "crisis": 0.05}, veto=0.2)


def cue_names(text, **heads):
    return CueDetector(HeadEncoder(**heads), LIMITS).analyse(text).cue_names


def test_an_ambiguous_phrase_fires_only_when_the_cue_head_backs_it():
    assert "urgency" not in cue_names("right now I'm at work", urgency=0.1)
    assert "urgency" in cue_names("I need this fixed right now", urgency=0.6)


def test_an_unambiguous_phrase_fires_unless_the_head_all_but_rules_it_out():
    assert "abuse" in cue_names("you're an idiot", abuse=0.2)
    assert "abuse" not in cue_names("do you stock The Idiot by Dostoevsky", abuse=0.01)


def test_a_disclosure_of_danger_to_life_fires_whatever_the_head_says():
    assert "crisis" in cue_names("honestly I want to end my life", crisis=0.0)


def test_the_cue_head_alone_fires_a_conversational_cue_with_spans_from_the_same_pass():
    encoder = HeadEncoder(repeat_contact=0.95)
    text = "grr. AGAIN."
    hit = CueDetector(encoder, LIMITS).analyse(text).cue("repeat_contact")
    assert hit is not None and hit.score == np.float32(0.95)
    assert [text[s:e] for s, e in hit.spans] == ["grr"] and encoder.calls == 1


def test_an_emotional_cue_found_by_the_head_takes_its_spans_from_the_evidence_head_not_occlusion():
    encoder = HeadEncoder(frustration=0.9)
    text = "well grr again"
    hit = CueDetector(encoder, LIMITS).analyse(text).cue("frustration")
    assert [text[s:e] for s, e in hit.spans] == ["grr"] and encoder.calls == 1


def test_an_explicit_emotion_word_is_overruled_only_below_the_veto():
    assert "frustration" in cue_names("I'm furious", frustration=0.2)
    assert "frustration" not in cue_names("Fast and Furious is on tonight", frustration=0.05)


def test_token_spans_widen_word_pieces_to_the_whole_word_and_fall_back_to_the_best_token():
    text = "unbelievably slow"
    offsets = ((0, 0), (0, 2), (2, 7), (7, 12), (13, 17), (0, 0))
    marks = np.array([0, 0.1, 0.7, 0.2, 0.1, 0])
    assert [text[s:e] for s, e in token_spans(marks, offsets, text, 0.5)] == ["unbelievably"]
    weak = np.array([0, 0.1, 0.3, 0.1, 0.1, 0])
    assert [text[s:e] for s, e in token_spans(weak, offsets, text, 0.5)] == ["unbelievably"]
    assert token_spans(np.array([0, 0.1, 0.1, 0.1, 0.1, 0]), offsets, text, 0.5) == []


def test_the_cue_head_alone_may_not_raise_a_crisis_the_lexicon_knows_to_be_innocent():
    assert "crisis" not in cue_names("I overdosed on coffee this morning", crisis=0.99)
    assert "crisis" in cue_names("I took an overdose last night", crisis=0.99)
