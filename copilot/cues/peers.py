"""The peers we measure ourselves against on the same texts: VADER's sentiment and the NRC emotion lexicon.

VADER (Hutto and Gilbert, 2014; vaderSentiment) reads negative sentiment as "frustration" at two cut-offs of its
compound score (-0.05, its documented cut-off for negative; and -0.5, strongly negative). NRCLex (the NRC Word-Emotion
Association Lexicon, Mohammad and Turney) reads anger or disgust words as frustration, fear as anxiety and sadness
as sadness. Both are installed for evaluations only (requirements-dev.txt); serving never imports them.
"""
from __future__ import annotations

import re
from collections.abc import Callable

from copilot.cues.realdata import DAILYDIALOG_CUES

WORD = re.compile(r"[a-z']+")
NRC_CUES = DAILYDIALOG_CUES  # NRC names its emotions as DailyDialog does: one mapping for every comparison


def vader(cutoff: float) -> Callable[[str], frozenset[str]]:
    """A peer that calls a text frustration when VADER's compound score is at or below the cut-off."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()
    return lambda text: frozenset({"frustration"}) if analyzer.polarity_scores(text)["compound"] <= cutoff \
        else frozenset()


def nrclex() -> Callable[[str], frozenset[str]]:
    """A peer that gives each cue whose NRC emotions (see NRC_CUES) any word of the text carries. The words are
    split here (lower case letters and apostrophes) rather than by TextBlob, which would need NLTK downloads."""
    from nrclex import NRCLex

    def cues(text: str) -> frozenset[str]:
        found = NRCLex()
        found.load_token_list(WORD.findall(text.lower()))
        return frozenset(NRC_CUES[e] for e, n in found.raw_emotion_scores.items() if n and e in NRC_CUES)

    return cues


PEERS: dict[str, Callable[[], Callable[[str], frozenset[str]]]] = {
    "VADER <= -0.05": lambda: vader(-0.05), "VADER <= -0.5": lambda: vader(-0.5), "NRCLex": nrclex,
}
