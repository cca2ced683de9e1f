"""One text normalisation step for every detector and the redactor (pure), with a map back to the original.

Customers and transcript sources write the same words in many ways: a non-breaking or double space, a tab, a
zero-width space or a filler inside a word, full-width letters, accents, Cyrillic or Greek look-alike letters, curly
apostrophes, HTML entities from a web chat. Detectors match on the normalised text; the spans they report are
mapped back with `Normalised.span`, so they still point into the text the agent sees.
"""
from __future__ import annotations

import html
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

# Apostrophe look-alikes: the patterns are written with a straight one.
APOSTROPHES = dict.fromkeys(map(ord, "\u2018\u2019\u201b\u02bc\u2032\uff07"), "'")
LINE_BREAKS = frozenset("\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")  # str.splitlines' boundaries: they end a clause
ENTITY = r"&(?:#\d{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});"
# What needs work; everything between two matches is printable ASCII with single spaces, kept as it is.
SPECIAL = re.compile(rf"(?P<entity>{ENTITY})|(?P<spaces>  +)|[^ -~]+")
NEEDS_WORK = re.compile(rf"  |{ENTITY}|[^ -~]")
# Letters that render blank but are not format characters (Hangul fillers, the braille blank, Arabic and NKo
# stretching marks): they hide inside words like zero-width spaces do, so they count as invisible.
FILLERS = frozenset("\u115f\u1160\u3164\uffa0\u2800\u0640\u07fa\U0001d159")
# Cyrillic, Greek, Armenian and Latin-extension letters that look like a Latin one, mapped one to one so that
# offsets stay put. Applied only to words that mix them with Latin letters, or that stand beside such a word
# (see `unconfuse`), so that Russian or Greek text is not rewritten.
CONFUSABLES = {ord(k): v for k, v in zip(
    "аеорсухіјѕԁһӏкԛԝүмАВЕКМНОРСТХУЅІЈҺҮԚԜӀ"  # Cyrillic
    "αεικνορτυχγηϳΑΒΕΖΗΙΚΜΝΟΡΤΥΧ"  # Greek
    "օսհոզ"  # Armenian
    "ıɑɡȷ",  # Latin letters outside ASCII that pass for ASCII ones
    "aeopcyxijsdhlkqwymABEKMHOPCTXYSIJHYQWI"
    "aeikvoptuxynjABEZHIKMNOPTYX"
    "ouhnq"
    "iagj", strict=True)}
CONFUSABLE = re.compile("[" + "".join(map(chr, CONFUSABLES)) + "]")
TOKEN = re.compile(r"[^\W_]+")  # letters and digits
LATIN = re.compile("[A-Za-z]")
MAX_GROWTH = 1  # characters a compatibility form may add ("\ufb01" is "fi"; "\u2026" would be "..."): scans stay linear


@dataclass(frozen=True)
class Normalised:
    """A normalised text and, for each of its characters, the original span that produced it (None when the text
    was already normal: then offsets are the identity). `invisible` says whether format or control characters
    were dropped, so that a caller may also try the reading where they stood for spaces."""

    text: str
    original: str
    starts: tuple[int, ...] | None = None
    ends: tuple[int, ...] | None = None
    invisible: bool = False

    def span(self, start: int, end: int) -> tuple[int, int]:
        """The original span of the normalised span [start, end)."""
        if self.starts is None:
            return start, end
        if end <= start:
            at = self.starts[start] if start < len(self.starts) else len(self.original)
            return at, at
        return self.starts[start], self.ends[end - 1]

    def spans(self, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """Each normalised span mapped back to the original text."""
        if self.starts is None:
            return list(spans)
        return [self.span(s, e) for s, e in spans]


@lru_cache(maxsize=4096)
def unaccented(c: str) -> str:
    """The letter without its accents ("é" is "e"), when it is one letter with marks; else the letter itself
    (a Hangul syllable decomposes into letters, not marks, and stays whole)."""
    parts = unicodedata.normalize("NFD", c)
    base = [p for p in parts if unicodedata.category(p) not in ("Mn", "Me")]
    return base[0] if len(base) == 1 and len(parts) > 1 else c


def unconfuse(text: str) -> str:
    """Look-alike letters made Latin inside words that mix them with Latin ones ("kіll" with a Cyrillic і), and
    in runs of words made only of look-alikes next to such a word ("kill муѕеlf", "tо"); one to one, so that
    every offset holds. A word with any other non-Latin letter is left as it is."""
    if not CONFUSABLE.search(text):
        return text
    words = list(TOKEN.finditer(text))
    latin = [bool(LATIN.search(w.group())) for w in words]
    # Only look-alikes (and digits): Latin if a Latin word stands next to its run.
    alike = [not latin[i] and bool(CONFUSABLE.search(w.group())) and w.group().translate(CONFUSABLES).isascii()
             for i, w in enumerate(words)]
    pieces, at, i = [], 0, 0
    while i < len(words):
        run_end = i
        if alike[i]:
            while run_end + 1 < len(words) and alike[run_end + 1]:
                run_end += 1
            if not ((i > 0 and latin[i - 1]) or (run_end + 1 < len(words) and latin[run_end + 1])):
                i = run_end + 1
                continue
        elif not latin[i] or not CONFUSABLE.search(words[i].group()):
            i += 1
            continue
        start, end = words[i].start(), words[run_end].end()
        pieces += [text[at:start], text[start:end].translate(CONFUSABLES)]
        at, i = end, run_end + 1
    return "".join(pieces) + text[at:]


@lru_cache(maxsize=4096)
def fold(piece: str, invisible_as_space: bool = False) -> tuple[str, bool]:
    """One character with its combining marks (or a decoded entity) in normal form: NFKC (unless that would
    add more than MAX_GROWTH characters), accents dropped, apostrophes straightened, stray marks dropped, format
    and control characters and fillers dropped (or made spaces), whitespace a space, a line break a newline; and
    whether it held an invisible one."""
    out, invisible = [], False
    normal = unicodedata.normalize("NFKC", piece)
    if len(normal) > len(piece) + MAX_GROWTH:  # U+FDFA is 18 letters in NFKC: 4,000 of them would be 72,000
        normal = piece
    for c in normal.translate(APOSTROPHES):
        if c in LINE_BREAKS:
            out.append("\n")
        elif c.isspace():
            out.append(" ")
        elif c in FILLERS or unicodedata.category(c) in ("Cf", "Cc"):  # zero-width spaces, soft hyphens, BOMs
            invisible = True
            if invisible_as_space:
                out.append(" ")
        elif unicodedata.category(c) not in ("Mn", "Me"):  # marks that composed with their letter are gone by now
            out.append(unaccented(c) if ord(c) > 0x7F else c)
    return "".join(out), invisible


def normalise(text: str, invisible_as_space: bool = False) -> Normalised:
    """The text in normal form (see `fold`), runs of whitespace collapsed to one space, or to one newline where
    the run holds one. With invisible_as_space, format characters separate words instead of vanishing
    ("kill\u200bmyself" rather than "ki\u200bll"). Look-alike letters in mixed words are made Latin last."""
    if not NEEDS_WORK.search(text):  # the usual snippet: one C-level scan, no copy
        return Normalised(text, text)
    chars: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    invisible = False

    def emit(piece: str, start: int, end: int) -> None:
        for c in piece:
            if c in " \n" and chars and chars[-1] in " \n":
                if c == "\n":
                    chars[-1] = "\n"
                ends[-1] = end
                continue
            chars.append(c)
            starts.append(start)
            ends.append(end)

    def plain(start: int, end: int) -> None:  # printable ASCII with single spaces: copied, not looped over
        if text[start] == " " and chars and chars[-1] in " \n":
            ends[-1] = start + 1
            start += 1
        chars.extend(text[start:end])
        starts.extend(range(start, end))
        ends.extend(range(start + 1, end + 1))

    at = 0
    for match in SPECIAL.finditer(text):
        start, end = match.span()
        if start > at:
            plain(at, start)
        at = end
        if match.lastgroup == "entity":
            decoded = html.unescape(match.group())
            if decoded == match.group():  # not an entity after all
                plain(start, end)
            else:
                folded, dropped = fold(decoded, invisible_as_space)
                invisible = invisible or dropped
                emit(folded, start, end)
            continue
        if match.lastgroup == "spaces":
            emit(" ", start, end)
            continue
        # A mark right after an ASCII letter composes with it ("e" + U+0301 is "é"): take the letter back.
        if unicodedata.combining(text[start]) and starts and starts[-1] == start - 1 and ends[-1] == start \
                and text[start - 1].isalnum():
            chars.pop()
            starts.pop()
            ends.pop()
            start -= 1
        piece = start
        for i in range(start + 1, end + 1):
            if i == end or not unicodedata.combining(text[i]):
                folded, dropped = fold(text[piece:i], invisible_as_space)
                invisible = invisible or dropped
                emit(folded, piece, i)
                piece = i
    if at < len(text):
        plain(at, len(text))
    return Normalised(unconfuse("".join(chars)), text, tuple(starts), tuple(ends), invisible)

