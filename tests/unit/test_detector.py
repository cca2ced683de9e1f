"""The firing rule and evidence spans of the detector, over a stand-in encoder (pure logic only)."""
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
