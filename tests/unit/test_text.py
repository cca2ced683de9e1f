"""The one normalisation step: what it folds, that it leaves plain text alone, and that spans map back."""
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from copilot.text import CONFUSABLES, normalise

PLAIN = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E)).filter(
    lambda t: "  " not in t and "&" not in t)
# Text that mixes the tricks in with ordinary words, so that the properties meet them side by side.
TRICKS = ["kill", "myself", " ", "  ", "\t", "\n", "\r\n", "\u00a0", "\u200b", "\u200d", "\ufeff", "\u00ad",
          "&nbsp;", "&amp;", "&#8203;", "&#x41;", "&foo;", "&", "\uff4b", "\u2019", "e\u0301", "\u0301", "\u3000",
          "\ufb01", "\u2028", "I\u0307", "\u0435", "\u0456", "\u03bf", "\u043e\u0440", "\u0434", "\u3164", "\u2800",
          "\u0640", "\u00e9", "\ud55c"]
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
    ("fiance\u0301e", "fiancee"),
    ("fianc\u00e9e na\u00efve \u00c5se \u1ec7", "fiancee naive Ase e"),
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


@pytest.mark.parametrize("text, normal", [
    ("kill mys\u0435lf", "kill myself"),  # Cyrillic е
    ("k\u0456ll my\u0455elf", "kill myself"),  # Cyrillic і and ѕ
    ("you are an idi\u043et", "you are an idiot"),  # Cyrillic о
    ("I want t\u03bf die", "I want to die"),  # Greek omicron
    ("kill \u043c\u0443\u0455\u0435lf", "kill myself"),
    ("\u0440\u0430\u0443 \u0441\u0430\u0440 now", "pay cap now"),  # words only of look-alikes, beside a Latin word
    ("KILL MYS\u0415LF", "KILL MYSELF"),
])
def test_look_alike_letters_in_a_latin_word_or_beside_one_become_latin(text, normal):
    out = normalise(text)
    assert out.text == normal and len(out.starts) == len(out.text) == len(text)
    assert all(text[s:e] for s, e in map(out.span, range(len(text)), range(1, len(text) + 1)))


@pytest.mark.parametrize("text", [
    "\u041f\u0440\u0438\u0432\u0435\u0442, \u043a\u0430\u043a \u0434\u0435\u043b\u0430?",  # Привет, как дела?
    "\u0441\u043e\u043a \u0438 \u043c\u043e\u0440\u0435 \u0440\u0430\u0437",  # сок и море раз
    "\u039a\u03b1\u03bb\u03b7\u03bc\u03b5\u03c1\u03b1 \u03ba\u03bf\u03c3\u03bc\u03b5",  # Καλημερα κοσμε
    "\u03c4\u03bf \u03b1\u03c5\u03c4\u03bf",  # το αυτο: only look-alikes, but no Latin word beside them
])
def test_russian_and_greek_text_keeps_its_letters(text):
    assert normalise(text).text == text


def test_the_look_alike_map_is_one_to_one_so_offsets_hold():
    assert all(len(latin) == 1 and latin.isascii() for latin in CONFUSABLES.values())


@pytest.mark.parametrize("filler", ["\u3164", "\u2800", "\u115f", "\u1160", "\uffa0", "\u0640"])
def test_blank_fillers_count_as_invisible_like_a_zero_width_space(filler):
    dropped = normalise(f"ki{filler}ll{filler}myself")
    assert dropped.text == "killmyself" and dropped.invisible
    assert normalise(f"kill{filler}myself", invisible_as_space=True).text == "kill myself"


def test_a_hangul_syllable_is_not_taken_apart_by_the_accent_fold():
    assert normalise("\ud55c\uad6d\uc5b4 caf\u00e9").text == "\ud55c\uad6d\uc5b4 cafe"
