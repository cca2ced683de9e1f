"""The explainable phrase detectors: what fires, what negation cancels, and where the spans fall."""
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from copilot.cues import lexicon
from copilot.cues.lexicon import Clauses, find_spans, is_negated, merge_spans, scan


def words(text: str, cue: str) -> list[str]:
    return [text[s:e].lower() for s, e in find_spans(text).get(cue, [])]


@pytest.mark.parametrize("text, cue", [
    ("This is the third time I've called about this", "repeat_contact"),
    ("I already explained this to your colleague yesterday", "repeat_contact"),
    ("my broadband is still not working", "repeat_contact"),
    ("I want to speak to a manager", "escalation_request"),
    ("I'd like to make a formal complaint", "escalation_request"),
    ("I'm taking this to the ombudsman", "escalation_request"),
    ("I want to cancel my contract", "churn_risk"),
    ("if this isn't fixed today I will cancel my account", "churn_risk"),
    ("I'm switching to another provider", "churn_risk"),
    ("I need this sorted today", "urgency"),
    ("my flight leaves tomorrow and I need the refund asap", "urgency"),
    ("you're a useless idiot", "abuse"),
    ("I know where you live", "abuse"),
    ("my husband passed away last month", "crisis"),
    ("I've been scammed out of my savings", "crisis"),
    ("I can't afford food this week", "crisis"),
    ("sometimes I just want to end it all", "crisis"),
])
def test_conversational_cue_fires_on_its_phrases(text, cue):
    assert cue in find_spans(text)


@pytest.mark.parametrize("text, cue", [
    ("I'm not cancelling, I just want to know my balance", "churn_risk"),
    ("I don't want to cancel my subscription", "churn_risk"),
    ("I'm not going to close my account", "churn_risk"),
    ("no need for a manager, you're doing fine", "escalation_request"),
    ("I don't want to make a complaint", "escalation_request"),
    ("it's not urgent", "urgency"),
    ("I never had a problem before", "repeat_contact"),
])
def test_negation_cancels_a_cue(text, cue):
    assert cue not in find_spans(text)


@pytest.mark.parametrize("text, cue", [
    ("if it isn't fixed by friday I will cancel my account", "churn_risk"),
    ("it's not working, and I want to speak to a manager", "escalation_request"),
    ("still not fixed after three weeks", "repeat_contact"),
    ("you're not very bright, are you", "abuse"),
])
def test_negation_does_not_reach_past_a_new_clause_or_into_its_own_evidence(text, cue):
    assert cue in find_spans(text)


def test_spans_cover_the_words_that_carried_the_cue():
    text = "This is the third time I've called and it's still not fixed"
    assert words(text, "repeat_contact") == ["third time", "still not fixed"]


def test_curly_apostrophes_count_like_straight_ones():
    assert "churn_risk" not in find_spans("I\u2019m not cancelling my account")
    assert "confusion" in find_spans("I don\u2019t understand this bill")


def test_plain_transactional_request_has_no_conversational_cue():
    assert find_spans("can you update my address to 14 elm street please") == {}


def test_negator_in_an_earlier_clause_does_not_reach():
    text = "I'm not happy. I want to cancel my contract"
    assert not is_negated(text, text.index("cancel"))


def test_merge_spans_joins_overlapping_and_touching_spans():
    assert merge_spans([(5, 9), (0, 3), (3, 4), (8, 12)]) == [(0, 4), (5, 12)]


@given(st.text(max_size=300))
def test_spans_always_lie_inside_the_text(text):
    for spans in find_spans(text).values():
        for start, end in spans:
            assert 0 <= start < end <= len(text)


def rescanned_negation(text: str, start: int) -> bool:
    """The negation rule as first written: a rescan of the text up to `start` for every match."""
    clause_start = 0
    for brk in lexicon.CLAUSE_BREAK.finditer(text, 0, start):
        clause_start = brk.end()
    words = [w.lower() for w in lexicon.WORD.findall(text[clause_start:start])][-lexicon.NEGATION_REACH:]
    for word in reversed(words):
        if word in lexicon.NEGATORS or word.endswith("n't"):
            return True
        if word in lexicon.SUBJECTS:
            return False
    return False


NEGATION_TEXT = st.lists(st.sampled_from(["not", "no", "don't", "isn't", "I", "it", "but", "however", "cancel",
                                          "my", "account", "manager", "though", ",", ".", "\n", "'", "won't",
                                          "butter", "I'll", "x"]), max_size=40).map(" ".join)


@given(NEGATION_TEXT, st.data())
def test_precomputed_clauses_give_the_same_verdict_as_a_rescan(text, data):
    starts = [m.start() for m in re.finditer(r"(?<![\w'])\S", text)] or [0]
    clauses = Clauses(text)
    for start in data.draw(st.lists(st.sampled_from(starts), max_size=10)):
        assert clauses.negated(start) == rescanned_negation(text, start), (text, start)


@pytest.mark.parametrize("text, cue, words", [
    ("this is the third  time I've called", "repeat_contact", ["third  time"]),
    ("I want to speak\tto a manager", "escalation_request", ["want to speak\tto a manager"]),
    ("I want to cancel\u00a0my contract", "churn_risk", ["want to cancel\u00a0my contract"]),
    ("I need this sorted asap&nbsp;please", "urgency", ["asap"]),
    ("you're a use\u200bless idiot", "abuse", ["you're a use\u200bless", "idiot"]),
    ("my husband passed\u200baway", "crisis", ["my husband passed"]),
    ("\uff49\u2019\uff4d \uff53\uff4f \uff46\uff55\uff52\uff49\uff4f\uff55\uff53", "frustration",
     ["\uff46\uff55\uff52\uff49\uff4f\uff55\uff53"]),
])
def test_every_cue_survives_whitespace_entities_invisible_and_wide_characters(text, cue, words):
    assert [text[s:e] for s, e in find_spans(text).get(cue, [])] == words


@pytest.mark.parametrize("text, cue", [
    ("I'm\u00a0not cancelling my account", "churn_risk"),
    ("I\u2019m not\t\tcancelling my account", "churn_risk"),
    ("no&nbsp;need for a manager", "escalation_request"),
    ("it\u2019s\u200bnot urgent", "urgency"),
])
def test_negation_reads_the_normal_form_too(text, cue):
    assert cue not in find_spans(text)


def test_both_readings_of_a_zero_width_space_are_tried_and_their_spans_united():
    text = "I want to kill\u200bmyself and can\u2019t af\u200bford food"
    assert [text[s:e] for s, e in scan(text).spans["crisis"]] == ["kill\u200bmyself", "can\u2019t af\u200bford food"]


@pytest.mark.parametrize("text", [
    "I just want to die",
    "i just wanna die",
    "I'm going to take my own life",
    "I've taken an overdose",
    "he overdosed last night",
    "life is not worth living anymore",
    "I want to unalive myself",
    "I want to kill-myself",
    "I want to kill_myself",
    "I want to kill.myself",
    "I want to kill\nmyself",
    "k i l l  m y s e l f",
    "s.u.i.c.i.d.e",
    "k1ll mys3lf",
    "I want to kill my self",
    "I want to end-it-all",
])
def test_crisis_fires_on_plain_wording_and_on_joined_or_spaced_out_phrases(text):
    assert "crisis" in find_spans(text)


@pytest.mark.parametrize("text", [
    "I could die for a coffee right now",
    "I don't want to die on hold waiting for you",
    "nobody wants to die on hold",
    "I want to die of embarrassment, I sent it to the wrong address",
    "that will kill my self-esteem",
    "the calls never end. It all started last week",
    "I want to end it. All I need is the final bill",
    "I want to take my life insurance out",
    "I overdosed on coffee this morning",
    "I skill myself up at night",
])
def test_crisis_stays_quiet_on_everyday_and_negated_wording(text):
    assert "crisis" not in find_spans(text)


@pytest.mark.parametrize("text", [
    "you are an idi\u043et",  # Cyrillic о
    "you are an idi\u00f3t",
    "you are an 1d10t",
    "u r an id10t",
    "you're so st*pid",
    "what a m0r0n",
])
def test_abuse_fires_through_look_alikes_accents_and_digits_for_letters(text):
    assert "abuse" in find_spans(text)


def test_a_crisis_span_behind_look_alike_letters_covers_them_in_the_text_as_sent():
    text = "I want to k\u0456ll mys\u0435lf"
    assert [text[s:e] for s, e in find_spans(text)["crisis"]] == ["k\u0456ll mys\u0435lf"]


# --- Every alternative is a whole word (issue #13): the boundaries used to wrap only the first and last ----------------

def literal_branches():
    """Every top-level alternative of every pattern that is plain words (letters, spaces, apostrophes)."""
    out = []
    for cue, patterns in lexicon.PATTERNS.items():
        for pattern in patterns:
            for branch in lexicon.split_top_level(pattern.lstrip("!?+")):
                branch = branch.removeprefix("=")
                if re.fullmatch(r"[a-z][a-z ']*[a-z]", branch):
                    out.append((cue, branch))
    return out


LITERALS = literal_branches()


def test_there_are_many_literal_alternatives_to_check():
    assert len(LITERALS) > 100


@pytest.mark.parametrize("cue, phrase", LITERALS)
def test_every_literal_alternative_matches_only_as_whole_words(cue, phrase):
    rules = [r for r in lexicon.RULES if r.cue == cue]
    assert any(r.regex.search(f"well {phrase} then") for r in rules), phrase
    for inside in (f"x{phrase}x", f"{phrase}s" if not phrase.endswith("s") else f"{phrase}x", f"pre{phrase}"):
        hit = [r for r in rules if r.regex.search(inside) and r.regex.search(inside).group() == phrase]
        assert not hit, f"{phrase!r} matched inside {inside!r}"


@pytest.mark.parametrize("text", [
    "the briefcase is in the hall",  # fca
    "we will issue you a receipt",  # sue you
    "I'll get the flour out",  # a threat needs an object
    "I will get back to you tomorrow",
    "it's 4 foot by 3 foot",  # "by <number>" is not a deadline
    "meet me at the bus terminal",
    "she swims breast stroke",
    "I'm afraid all the big tables are taken",  # politeness
    "no worries at all",
    "my phone died this morning",  # ambiguous: found, but the model must agree
    "I'll find you a seat near the front",
])
def test_everyday_sentences_with_trigger_words_state_no_cue(text):
    found = scan(text)
    assert not found.explicit, (text, found)


@pytest.mark.parametrize("text", ["Great, thanks.", "Perfect! That works, thank you so much.", "Lovely, cheers"])
def test_sincere_thanks_after_an_opening_word_of_praise_is_gratitude_not_sarcasm(text):
    found = scan(text)
    assert not found.sarcasm and "gratitude" in found.spans and "frustration" not in found.spans


@pytest.mark.parametrize("text", ["thanks for ruining my evening", "Great, another delay.",
                                  "Perfect. Still nothing.", "thanks so much for wasting my afternoon"])
def test_sarcastic_praise_needs_a_sign_that_something_went_wrong(text):
    found = scan(text)
    assert found.sarcasm and "frustration" in found.explicit and "gratitude" not in found.spans


@pytest.mark.parametrize("text, cue", [
    ("still waiting", "repeat_contact"),
    ("I've requested it so many times", "repeat_contact"),
    ("this is my third message about it", "repeat_contact"),
    ("#switchtoflipkart", "churn_risk"),
    ("Cheater.", "abuse"),
    ("you dolts", "abuse"),
    ("a driver extorting $160 from me", "crisis"),
    ("I'll find you", "abuse"),
    ("I'm going to hurt you", "abuse"),
])
def test_how_customers_write_the_conversational_cues(text, cue):
    assert cue in scan(text).explicit


@pytest.mark.parametrize("text", ["I want to end my life", "k i l l m y s e l f", "there is domestic violence"])
def test_disclosures_of_danger_to_life_are_marked_never_to_be_overruled(text):
    assert "crisis" in scan(text).safety


@pytest.mark.parametrize("text, cue", [("I need it right now", "urgency"), ("my dad has cancer", "crisis"),
                                       ("I'm leaving", "churn_risk")])
def test_ambiguous_phrases_are_evidence_that_the_model_must_back(text, cue):
    found = scan(text)
    assert cue in found.spans and cue in found.checked and cue not in found.explicit


@pytest.mark.parametrize("text", ["I overdosed on coffee this morning", "my phone died so I'm on my mum's",
                                  "I'm dying to try the new menu"])
def test_everyday_phrases_that_only_sound_like_a_crisis_rule_it_out(text):
    found = scan(text)
    assert "crisis" in found.innocent and "crisis" not in found.explicit


def test_an_unambiguous_crisis_phrase_still_counts_beside_an_innocent_one():
    found = scan("my phone died the day my husband passed away")
    assert "crisis" in found.explicit and "crisis" not in found.innocent
