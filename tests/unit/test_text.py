"""The one normalisation step: what it folds, that it leaves plain text alone, and that spans map back."""
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from copilot.text import normalise

PLAIN = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E)).filter(
    lambda t: "  " not in t and "&" not in t)
# Text that mixes the tricks in with ordinary words, so that the properties meet them side by side.
TRICKS = ["kill", "myself", " ", "  ", "\t", "\n", "\r\n", "\u00a0", "\u200b", "\u200d", "\ufeff", "\u00ad",
          "&nbsp;", "&amp;", "&#8203;", "&#x41;", "&foo;", "&", "\uff4b", "\u2019", "e\u0301", "\u0301", "\u3000",
          "\ufb01", "\u2028", "I\u0307"]
MIXED = st.lists(st.sampled_from(TRICKS) | st.text(max_size=3), max_size=30).map("".join)


def originals(text: str, invisible_as_space: bool = False) -> list[str]:
    """The original piece behind each character of the normal form."""
    normal = normalise(text, invisible_as_space)
    return [text[slice(*normal.span(i, i + 1))] for i in range(len(normal.text))]


@given(PLAIN)
@example("This is the third time I've called & I'm furious")
def test_plain_ascii_text_with_single_spaces_is_its_own_normal_form(text):
    normal = normalise(text)
    assert normal.text is text and normal.starts is None and not normal.invisible
    assert normal.span(2, 5) == (2, 5)


@pytest.mark.parametrize("invisible_as_space", [False, True])
@given(text=st.text() | MIXED)
def test_every_span_maps_inside_the_original_and_keeps_its_order(text, invisible_as_space):
    normal = normalise(text, invisible_as_space)
    last = (0, 0)
    for i in range(len(normal.text)):
        start, end = normal.span(i, i + 1)
        assert 0 <= start < end <= len(text)
        assert start >= last[0] and end >= last[1]
        last = (start, end)
    for start in range(len(normal.text) + 1):
        a, b = normal.span(start, len(normal.text))
        assert 0 <= a <= b <= len(text)


@pytest.mark.parametrize("invisible_as_space", [False, True])
@given(text=st.text() | MIXED)
def test_normalising_twice_changes_nothing_more(text, invisible_as_space):
    once = normalise(text, invisible_as_space).text
    if "&" not in once:  # one level of HTML entities is decoded per call, by design: "&amp;nbsp;" is "&nbsp;"
        assert normalise(once, invisible_as_space).text == once


@given(st.text() | MIXED)
def test_the_normal_form_has_no_runs_of_whitespace_and_no_invisible_characters(text):
    out = normalise(text).text
    assert "  " not in out and "\t" not in out and "\u200b" not in out and "\u00a0" not in out
    assert " \n" not in out and "\n " not in out and "\n\n" not in out


@given(st.text() | MIXED)
def test_the_normal_form_is_at_most_twice_as_long_as_the_text(text):
    assert len(normalise(text).text) <= 2 * len(text)
    assert len(normalise(text, invisible_as_space=True).text) <= 2 * len(text)


@pytest.mark.parametrize("text, normal", [
    ("kill  myself", "kill myself"),
    ("kill\tmyself", "kill myself"),
    ("kill\u00a0\u00a0myself", "kill myself"),
    ("kill&nbsp;&nbsp;myself", "kill myself"),
    ("kill \t&nbsp;\u00a0 myself", "kill myself"),
    ("ki\u200bll my\u00adself", "kill myself"),
    ("\uff4b\uff49\uff4c\uff4c\u3000\uff4d\uff59\uff53\uff45\uff4c\uff46", "kill myself"),
    ("don\u2019t, don\u2018t, don\u02bct, don\uff07t", "don't, don't, don't, don't"),
    ("fiance\u0301e", "fianc\u00e9e"),
    ("k\u0338i\u0338l\u0338l\u0338", "kill"),
    ("one \r\n\r\n two", "one\ntwo"),
    ("fish &amp; chips &lt;3 &#x41;&#66; &foo; &amp", "fish & chips <3 AB &foo; &amp"),
    ("a\u2028b", "a\nb"),
    ("\ufb01ne \ufdfa", "fine \ufdfa"),  # a compatibility form 18 letters long would inflate the text
])
def test_whitespace_entities_widths_apostrophes_and_marks_fold_to_one_form(text, normal):
    assert normalise(text).text == normal


def test_a_zero_width_space_vanishes_or_separates_words_as_asked():
    assert normalise("ki\u200bll").text == "kill" and normalise("ki\u200bll").invisible
    assert normalise("kill\u200bmyself").text == "killmyself"
    assert normalise("kill\u200bmyself", invisible_as_space=True).text == "kill myself"
    assert normalise("kill&#8203;myself", invisible_as_space=True).text == "kill myself"
    assert not normalise("kill\u00a0myself").invisible


def test_spans_of_the_normal_form_point_at_what_the_agent_sees():
    text = "I want to kill&nbsp;&nbsp;\uff4d\uff59\uff53\uff45\uff4c\uff46 now"
    normal = normalise(text)
    start = normal.text.index("myself")
    assert text[slice(*normal.span(start, start + 6))] == "\uff4d\uff59\uff53\uff45\uff4c\uff46"
    assert text[slice(*normal.span(start - 5, start + 6))] == "kill&nbsp;&nbsp;\uff4d\uff59\uff53\uff45\uff4c\uff46"
    assert originals("a\u00a0 b") == ["a", "\u00a0 ", "b"]
    assert originals("cafe\u0301!") == ["c", "a", "f", "e\u0301", "!"]
    assert normal.spans([(0, 1), (start, start)]) == [(0, 1), (normal.span(start, start))]
