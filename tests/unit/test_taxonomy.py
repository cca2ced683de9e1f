"""The cue taxonomy and its mapping from GoEmotions labels."""
import numpy as np

from copilot.cues.detector import cue_scores
from copilot.cues.taxonomy import CONVERSATION_CUES, CUES, EMOTION_CUES, CueHit, order_hits

GOEMOTIONS = ("admiration amusement anger annoyance approval caring confusion curiosity desire disappointment "
              "disapproval disgust embarrassment excitement fear gratitude grief joy love nervousness optimism "
              "pride realization relief remorse sadness surprise neutral").split()


def test_there_are_twelve_cues_six_from_the_model():
    assert len(CUES) == 12 and len(EMOTION_CUES) == 6 and len(CONVERSATION_CUES) == 6


def test_every_mapped_label_is_a_goemotions_label():
    for labels in EMOTION_CUES.values():
        assert set(labels) <= set(GOEMOTIONS)


def test_cue_score_is_the_highest_of_its_labels():
    probabilities = {"anger": 0.2, "annoyance": 0.7, "fear": 0.1, "nervousness": 0.4}
    scores = cue_scores(np.array([probabilities.get(label, 0.0) for label in GOEMOTIONS]), GOEMOTIONS)
    assert scores["frustration"] == 0.7
    assert scores["anxiety"] == 0.4
    assert scores["gratitude"] == 0.0


def test_order_hits_merges_duplicates_and_follows_taxonomy_order():
    hits = [CueHit("crisis", 1.0, ((0, 3),)), CueHit("frustration", 0.5, ((4, 8),)),
            CueHit("frustration", 0.7, ((10, 12),))]
    ordered = order_hits(hits)
    assert [h.cue for h in ordered] == ["frustration", "crisis"]
    assert ordered[0].score == 0.7 and ordered[0].spans == ((4, 8), (10, 12))
