"""Defect 9 of issue #11: personal data stored raw. The redaction corpus (tests/data/redaction_corpus.jsonl) holds
its hit and false-positive rates; the cases the issue measured are pinned one by one.

Goes through redact(), which the old code had too, and redact_snippet() where it exists, so the old code fails on
what it stores, not on an import.
"""
from pathlib import Path

import pytest

import copilot.redact as redaction
from tests.redaction_measure import read_corpus, score, survives, table

CORPUS = read_corpus()
CORPUS_DIR = Path(__file__).resolve().parents[1] / "data"


def test_the_corpus_holds_at_least_200_cases_with_hard_negatives_and_snippets():
    kinds = {c["kind"] for c in CORPUS}
    assert len(CORPUS) >= 200 and {"card", "email", "phone", "ssn", "nino", "iban", "none"} <= kinds
    assert sum(c["kind"] == "none" for c in CORPUS) >= 50 and sum("snippets" in c for c in CORPUS) >= 10


def test_the_corpus_hit_rate_is_at_least_98_percent_and_100_on_cards_with_few_false_positives():
    scores = score(CORPUS, redaction.redact, getattr(redaction, "redact_snippet", None))
    print("\n" + table(scores))
    assert scores["all"].hit_rate >= 0.98, scores["all"].misses
    assert scores["card"].hit_rate == 1.0, scores["card"].misses
    assert scores["none"].false_positives <= 0.03 * scores["none"].cases, scores["none"].misses


def test_a_blind_corpus_never_tuned_on_keeps_every_card_and_at_least_94_percent():
    """tests/data/redaction_blind_test.jsonl was written by someone who had not seen the redactor, and nobody has
    tuned on it (its twin, redaction_blind_dev.jsonl, was used for tuning): the honest measure, and a floor
    against regressions. It is below the 98% the project corpus reaches; see BENCHMARKS.md."""
    blind = read_corpus(CORPUS_DIR / "redaction_blind_test.jsonl")
    scores = score(blind, redaction.redact, redaction.redact_snippet)
    print("\n" + table(scores))
    assert scores["card"].hit_rate == 1.0, scores["card"].misses
    assert scores["all"].hit_rate >= 0.94, scores["all"].misses
    assert scores["none"].false_positives <= 0.05 * scores["none"].cases, scores["none"].misses


@pytest.mark.parametrize("text, pii", [
    ("card 4111\u00a01111\u00a01111\u00a01111", "4111111111111111"),
    ("card 4111  1111  1111  1111", "4111111111111111"),
    ("card 4111\t1111\t1111\t1111", "4111111111111111"),
    ("card 4111/1111/1111/1111", "4111111111111111"),
    ("card 4111_1111_1111_1111", "4111111111111111"),
    ("card 4111\u200b1111\u200b1111\u200b1111", "4111111111111111"),
    ("card4111111111111111", "4111111111111111"),
    ("ssn 123\u200b-45\u200b-6789", "123456789"),
    ("NI AB\u200b12\u200b34\u200b56\u200bC", "AB123456C"),
    ("call 555\u200b010\u200b4477", "5550104477"),
    ("mail user@bücher.de", "user@bücher.de"),
    ("mail user@例え.jp", "user@例え.jp"),
    ("mail john＠example.com", "john@example.com"),
    ("mail john . smith @ gmail . com", "smith @ gmail"),
    ("it's john dot smith at gmail dot com", "john dot smith"),
    ("vip 4111 1111 1111 1111", "4111111111111111"),  # a queue name: the service redacts free-text fields too
])
def test_the_cases_the_issue_measured_are_not_stored_raw(text, pii):
    assert not survives(pii, redaction.redact(text))


def test_a_card_read_out_over_four_snippets_leaves_none_of_its_digits():
    redact_snippet = getattr(redaction, "redact_snippet", None)
    stored, open_digits = [], 0
    for snippet in ["4111", "1111", "1111", "1111"]:
        if redact_snippet is None:  # the old service stored redact() of each snippet
            stored.append(redaction.redact(snippet))
        else:
            text, open_digits = redact_snippet(snippet, open_digits)
            stored.append(text)
    assert not any(c.isdigit() for c in "".join(stored)), stored
