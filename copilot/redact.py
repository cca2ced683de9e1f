"""PII redaction (pure): card numbers (Luhn-checked), emails, phone numbers, national ids, IBANs, long numbers.

Applied to every transcript text before it is stored or logged. The rules match on the normalised text
(copilot.text), so a tab, a non-breaking or zero-width space or a full-width digit changes nothing, and the spans
found are mapped back: only the personal data is replaced, every other character stays as written. Replacements
keep the kind ("[CARD]") so the log stays readable, and never the digits.

Numbers. Digit groups joined by any run of separators (spaces, '-', dashes, '.', '/', '_', ',', brackets) form
one run, whatever letters they touch. Within a run, each 13-19 digit window that passes Luhn is a [CARD]; the
rest of a run that holds a card is a [NUMBER]. A run of 13 or more digits that fails Luhn is a [NUMBER] too: in a
support transcript it is most often a card with one digit misheard (the other 15 are real), or a bank account
with its sort code, and both are as personal as a card. Runs named by a reference word just before them ("order",
"tracking", "ticket", "invoice", ...) keep their digits unless they are a valid card. Runs of 7-12 digits are a
[PHONE] unless they look like a date, a range, an amount or (under 9 digits) a code glued to letters; 3-2-4 digits a
[NATIONAL_ID].

Emails: '@' (full-width too) with spaces around it and the dots, unicode names and domains; "(at)", "[at]";
and spoken ("john dot smith at gmail dot com"), where a bare "at" counts only between a name-like token and a
domain with a common top-level domain, and only when the domain is a mail provider, the name has a joiner or a
digit, or an email word came before.

Every rule is anchored and bounded, so redaction is linear in the text.
"""
from __future__ import annotations

import re
from bisect import bisect_right
from itertools import accumulate

from copilot.text import normalise

# What earlier rules found is masked with this before later rules look, so they never match inside it.
MASK = "\x00"
DIGIT = re.compile(r"\d")
SEPARATOR = r"[ \n\-\u2010-\u2015\u2212./_,()]"
RUN = re.compile(rf"[+(]?\d+(?:{SEPARATOR}{{1,5}}\d+)*")
GROUP = re.compile(r"\d+")
# Outside a card, a comma or a line break ends a number: "items 101, 102, 103" is a list, not one number.
SPLIT = re.compile(r"[,\n]")

IBAN = re.compile(r"(?<![^\W_])[A-Z]{2}\d{2}(?:[ -]?[A-Z0-9]{4}){2,7}(?:[ -]?[A-Z0-9]{1,4})?(?![^\W_])", re.I)
IBAN_STRICT = re.compile(r"[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?")
NINO_GAP = r"[ \-./_]{0,3}"
UK_NINO = re.compile(r"(?<![^\W_])(?!BG|GB|NK|KN|TN|NT|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]"
                     rf"{NINO_GAP}\d{{2}}{NINO_GAP}\d{{2}}{NINO_GAP}\d{{2}}{NINO_GAP}[A-D](?![^\W_])", re.I)

# A number right after one of these words is a reference, not a person's data (unless it is a valid card).
REFERENCE = re.compile(
    r"\b(?:order|ticket|case|ref|reference|tracking|invoice|confirmation|booking|parcel|shipment|package|sku|"
    r"model|serial|part|flight|reservation|claim|incident|receipt|transaction|version|build|release|firmware|"
    r"item|product|po)\W{0,3}(?:(?:number|no|num|nr|id|code)\W{0,3})?(?:(?:is|was)\W{0,3})?[A-Za-z]{0,4}$", re.I)
UNIT_AFTER = re.compile(r" ?(?:%|percent|dollars?|pounds?|euros?|usd|gbp|eur|points?|miles?|km|kg|users?|people|"
                        r"items?|units?|bytes?|kb|mb|gb|tb|views|downloads)\b", re.I)
CURRENCY = "$£€¥₹"

AT = re.compile(r" ?@ ?| ?[(\[{<] ?at ?[)\]}>] ?| at ", re.I)
DOT = r"(?:\.| \. | ?[(\[{<] ?dot ?[)\]}>] ?| dot )"
# The local part is read backwards from the '@' (a bounded look back), so its joiners are written reversed.
DOT_REVERSED = r"(?:\.| \. | ?[)\]}>] ?tod ?[(\[{<] ?| tod | erocsrednu | hsad | nehpyh )"
LABEL = r"[\w-]{1,63}"
DOMAIN = re.compile(rf"(?:{LABEL}{DOT}){{1,6}}[^\W\d_]{{2,24}}(?![\w-])", re.I)
SPOKEN_TLDS = ("com|net|org|edu|gov|mil|int|io|co|uk|us|ca|au|nz|ie|de|fr|es|it|nl|be|ch|at|se|no|dk|fi|pl|pt|"
               "cz|jp|cn|in|br|mx|ru|za|eu|info|biz|me|tv|ai|app|dev|xyz|online|email|mail")
SPOKEN_DOMAIN = re.compile(rf"(?P<first>{LABEL}){DOT}(?:{LABEL}{DOT}){{0,5}}(?:{SPOKEN_TLDS})(?![\w-])", re.I)
LOCAL_REVERSED = re.compile(rf"[\w%+'-]{{1,64}}(?:{DOT_REVERSED}[\w%+'-]{{1,64}}){{0,5}}", re.I)
LOCAL_LOOK_BACK = 400
MAIL_PROVIDERS = frozenset(
    "gmail googlemail yahoo ymail hotmail outlook live msn icloud me mac aol proton protonmail pm gmx mail "
    "yandex zoho fastmail btinternet sky virginmedia talktalk comcast verizon att sbcglobal example".split())
EMAIL_WORD = re.compile(r"\b(?:e-?mail|address|inbox)\b", re.I)
EMAIL_WORD_LOOK_BACK = 120
# Words that stand before a bare "at" in ordinary sentences ("look at", "shop at", "me at"): never a local part.
NOT_A_NAME = frozenset(
    "i me you him her it us them we they that this these those there here what which who one all is was be "
    "are were am been being not just only even also up in out on off time home work works worked working "
    "look looks looked looking shop shops shopped shopping stay stayed staying meet met meeting arrive arrived "
    "buy bought ordered order purchased sold sell selling available cheaper cheap price prices sale deal deals "
    "sign signed log logged online site website page store stores anything something nothing everything "
    "people someone anyone everyone listed good bad best great".split())
NOT_A_DOMAIN = frozenset(
    "the a an this that these those my your his her our their its some any least most all last first once "
    "which what home work night noon midnight".split())


def luhn_ok(digits: str) -> bool:
    """Whether a digit string passes the Luhn checksum that payment card numbers carry."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = int(ch)
        if i % 2 == 1:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def _iban_ok(candidate: str) -> bool:
    """Whether an IBAN candidate passes its mod-97 check."""
    compact = re.sub(r"[ -]", "", candidate).upper()
    moved = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def _mask(text: str, spans: list[tuple[int, int, str]]) -> str:
    """The text with each span overwritten by MASK characters (same length, so offsets hold)."""
    if not spans:
        return text
    out, at = [], 0
    for start, end, _ in sorted(spans):
        out.append(text[at:start])
        out.append(MASK * (end - start))
        at = end
    out.append(text[at:])
    return "".join(out)


# -- emails ------------------------------------------------------------------------------------------------------
def _local_start(text: str, end: int) -> int | None:
    """Where the local part that ends at `end` starts (read backwards, bounded), or None."""
    window = text[max(0, end - LOCAL_LOOK_BACK):end][::-1]
    match = LOCAL_REVERSED.match(window)
    if not match:
        return None
    start = end - len(match.group(0).rstrip(".'-"))
    return start if start < end else None


def _spoken_ok(text: str, start: int, anchor: re.Match, domain: re.Match) -> bool:
    """Whether a bare "at" between a name and a domain reads as an email address, not an ordinary sentence."""
    local = text[start:anchor.start()]
    last_word = re.split(r"\W+", local.lower())[-1] if local else ""
    if last_word in NOT_A_NAME or domain.group("first").lower() in NOT_A_DOMAIN:
        return False
    joined = re.search(r"\.| dot | underscore | dash | hyphen |_|\d", local, re.I) is not None
    return (domain.group("first").lower() in MAIL_PROVIDERS or joined
            or EMAIL_WORD.search(text, max(0, start - EMAIL_WORD_LOOK_BACK), start) is not None)


def _emails(text: str) -> list[tuple[int, int, str]]:
    """Email spans: written, bracketed or spoken."""
    spans: list[tuple[int, int, str]] = []
    for anchor in AT.finditer(text):
        spoken = anchor.group(0).strip().lower() == "at"
        domain = (SPOKEN_DOMAIN if spoken else DOMAIN).match(text, anchor.end())
        start = _local_start(text, anchor.start()) if domain else None
        if start is None or (spans and start < spans[-1][1]):
            continue
        if spoken and not _spoken_ok(text, start, anchor, domain):
            continue
        spans.append((start, domain.end(), "[EMAIL]"))
    return spans


# -- numbers -----------------------------------------------------------------------------------------------------
def _card_windows(digits: str, sizes: list[int]) -> list[tuple[int, int]]:
    """Windows of whole groups (first, past-last) holding 13-19 digits that pass Luhn, left to right, longest
    first; prefix sums make each window's checksum O(1)."""
    values = [int(c) for c in digits]
    doubled = [v * 2 - 9 if v > 4 else v * 2 for v in values]
    plain = [list(accumulate((v if i % 2 == p else 0 for i, v in enumerate(values)), initial=0)) for p in (0, 1)]
    twice = [list(accumulate((v if i % 2 == p else 0 for i, v in enumerate(doubled)), initial=0)) for p in (0, 1)]
    offsets = list(accumulate(sizes, initial=0))
    windows, first = [], 0
    while first < len(sizes):
        best, last = None, first
        while last < len(sizes) and offsets[last + 1] - offsets[first] <= 19:
            last += 1
            s, e = offsets[first], offsets[last]
            if e - s >= 13:
                p = (e - 1) % 2  # the last digit is never doubled; every second one before it is
                if (plain[p][e] - plain[p][s] + twice[1 - p][e] - twice[1 - p][s]) % 10 == 0:
                    best = last
        if best is None:
            first += 1
        else:
            windows.append((first, best))
            first = best
    return windows


def _dated(groups: list[tuple[int, int]]) -> bool:
    """Whether the first three groups read as a date (2024-01-15, 15/01/2024)."""
    sizes = [e - s for s, e in groups[:3]]
    return len(sizes) == 3 and ((sizes[0] == 4 and sizes[1] <= 2 and sizes[2] <= 2)
                                or (sizes[0] <= 2 and sizes[1] <= 2 and sizes[2] == 4))


def _ranged(text: str, groups: list[tuple[int, int]]) -> bool:
    """Whether the groups read as a range of years (1999-2004), times or days (9.00 - 17.30, 12/01-15/01)."""
    if len(groups) == 2 and all(text[s:e][:2] in ("19", "20") and e - s == 4 for s, e in groups):
        return True
    if len(groups) != 4 or any(e - s > 2 for s, e in groups):
        return False
    inner = [text[groups[i][1]:groups[i + 1][0]] for i in range(3)]
    return inner[0] == inner[2] and inner[0] in (".", "/", ":") and re.search(r"[-\u2010-\u2015]", inner[1]) is not None


def _number_kind(text: str, groups: list[tuple[int, int]]) -> str | None:
    """The tag for one comma-free run of digit groups that holds no card, or None to keep it."""
    sizes = [e - s for s, e in groups]
    total = sum(sizes)
    start, end = groups[0][0], groups[-1][1]
    if sizes == [3, 2, 4]:
        return "[NATIONAL_ID]"
    if total < 7 or REFERENCE.search(text, max(0, start - 48), start):
        return None
    before = text[start - 1] if start else ""
    if before == "+" or text.startswith("00", start):
        return "[PHONE]" if total <= 15 else "[NUMBER]"
    if total >= 13:
        return "[NUMBER]"
    if _dated(groups):
        return _number_kind(text, groups[3:]) if len(groups) > 3 else None
    if _ranged(text, groups) or (before and before in CURRENCY) or UNIT_AFTER.match(text, end):
        return None
    glued = before.isalpha() or text[end:end + 1].isalpha()
    return "[PHONE]" if total >= (9 if glued else 7) else None


def _numbers(text: str) -> list[tuple[int, int, str]]:
    """Spans of cards, long numbers, phone numbers and SSNs among the runs of digit groups."""
    spans: list[tuple[int, int, str]] = []
    for run in RUN.finditer(text):
        groups = [(g.start() + run.start(), g.end() + run.start()) for g in GROUP.finditer(run.group(0))]
        sizes = [e - s for s, e in groups]
        windows = _card_windows("".join(text[s:e] for s, e in groups), sizes) if sum(sizes) >= 13 else []
        if windows:
            at = 0
            for first, past in windows:
                if at < first:
                    spans.append((groups[at][0], groups[first - 1][1], "[NUMBER]"))
                spans.append((_opening(text, groups[first][0], groups[past - 1][1]), groups[past - 1][1], "[CARD]"))
                at = past
            if at < len(groups):
                spans.append((groups[at][0], groups[-1][1], "[NUMBER]"))
            continue
        part: list[tuple[int, int]] = []
        for group in groups:
            if part and SPLIT.search(text, part[-1][1], group[0]):
                spans += _part_span(text, part)
                part = []
            part.append(group)
        spans += _part_span(text, part)
    return spans


def _part_span(text: str, groups: list[tuple[int, int]]) -> list[tuple[int, int, str]]:
    """The span of a comma-free part of a run, if it is personal data (a leading '+' or '(' included)."""
    tag = _number_kind(text, groups)
    if tag is None:
        return []
    start = groups[0][0]
    if text[start - 1:start] == "+":
        start -= 1
    return [(_opening(text, start, groups[-1][1]), groups[-1][1], tag)]


def _opening(text: str, start: int, end: int) -> int:
    """The start of a span widened over an opening bracket whose closing one the span holds ("(555) 010")."""
    return start - 1 if text[start - 1:start] == "(" and ")" in text[start:end] else start


def _ibans(text: str) -> list[tuple[int, int, str]]:
    """IBAN spans: mod-97 valid in any case, or written in capitals as banks print them."""
    return [(m.start(), m.end(), "[IBAN]") for m in IBAN.finditer(text)
            if _iban_ok(m.group(0)) or IBAN_STRICT.fullmatch(m.group(0))]


def _ninos(text: str) -> list[tuple[int, int, str]]:
    """UK National Insurance number spans."""
    return [(m.start(), m.end(), "[NATIONAL_ID]") for m in UK_NINO.finditer(text)]


def _find(text: str) -> list[tuple[int, int, str]]:
    """Disjoint spans (start, end, tag) of personal data in a normalised text, in order."""
    spans = _emails(text) if ("@" in text or "at" in text.lower()) else []
    if DIGIT.search(text):
        for rule in (_ibans, _ninos, _numbers):
            spans += rule(_mask(text, spans))
    return sorted(spans)


def _render(text: str, norm, spans: list[tuple[int, int, str]]) -> str:
    """The original text with each normalised span, mapped back, replaced by its tag."""
    if not spans:
        return text
    out, at = [], 0
    for start, end, tag in spans:
        o_start, o_end = norm.span(start, end)
        o_start = max(o_start, at)
        out.append(text[at:o_start])
        out.append(tag)
        at = max(o_end, o_start)
    out.append(text[at:])
    return "".join(out)


def redact(text: str) -> str:
    """The text with personal data replaced by [CARD], [EMAIL], [IBAN], [NATIONAL_ID], [PHONE] and [NUMBER]."""
    norm = normalise(text)
    return _render(text, norm, _find(norm.text))


# -- numbers read out over several snippets ----------------------------------------------------------------------
MAX_OPEN_DIGITS = 64
SNIPPET_TOKEN = re.compile(rf"(?P<number>{RUN.pattern})|(?P<word>[^\W\d_]+(?:'[^\W\d_]+)?)")
GAP = re.compile(rf"{SEPARATOR}*")
DIGIT_WORDS = frozenset("zero oh one two three four five six seven eight nine".split())
# Words that go with a number being read out; "order", "ticket", amounts and units are not among them, so "my order
# 12345 hasn't come" keeps its number.
READ_OUT_WORDS = frozenset(
    "it it's its is was the a my card card's cards number numbers no and then uh um umm er erm ah eh hmm okay ok "
    "so yes yeah yep sure right that that's thats next last first second third fourth final digits digit are "
    "sorry again i think believe guess mean with ends ending starts starting begins in on expiry expires exp "
    "expiration date cvv cvc security code long account sort phone mobile cell ssn social insurance dash space "
    "hyphen slash dot point double triple please hold wait let me read you to now here go goes repeat of more "
    "bit part rest group set block got ready".split())


def _overlaps(spans: list[tuple[int, int, str]], ends: list[int], start: int, end: int) -> bool:
    """Whether any of the sorted, disjoint spans (with `ends` their ends) overlaps [start, end)."""
    i = bisect_right(ends, start)
    return i < len(spans) and spans[i][0] < end


def _uncovered(text: str, groups: list[tuple[int, int]],
               spans: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """[NUMBER] spans over the digit groups that no span covers yet, groups with only separators between them
    together."""
    ends = [e for _, e, _ in spans]
    out: list[tuple[int, int, str]] = []
    for start, end in groups:
        if _overlaps(spans, ends, start, end):
            continue
        if out and GAP.fullmatch(text, out[-1][1], start) and not _overlaps(spans, ends, out[-1][1], start):
            out[-1] = (out[-1][0], end, "[NUMBER]")
        else:
            out.append((start, end, "[NUMBER]"))
    return out


def _digit_count(token: re.Match) -> int:
    """How many digits a snippet token stands for: its digits, or one for a digit word."""
    return sum(c.isdigit() for c in token.group(0)) if token.group("number") else 1


def _token_groups(token: re.Match) -> list[tuple[int, int]]:
    """The digit groups of a snippet token: each group of a run of digits, or the whole of a digit word."""
    if not token.group("number"):
        return [token.span()]
    return [(g.start() + token.start(), g.end() + token.start()) for g in GROUP.finditer(token.group(0))]


def redact_snippet(text: str, open_digits: int) -> tuple[str, int]:
    """One snippet redacted as redact() does, plus a number read out over several snippets: a snippet of digit
    groups and read-out words has every group redacted, and so has the leading group of one that continues an open
    number. `open_digits` (the digits left open, never the digits) goes in, the redacted text and new count out."""
    norm = normalise(text)
    spans = _find(norm.text)
    tokens = list(SNIPPET_TOKEN.finditer(norm.text))
    ends = [e for _, e, _ in spans]
    kinds = []
    for token in tokens:
        word = (token.group("word") or "").lower()
        kinds.append("digits" if token.group("number") or word in DIGIT_WORDS
                     else "covered" if _overlaps(spans, ends, token.start(), token.end())
                     else "filler" if word in READ_OUT_WORDS else "other")
    digit_tokens = [t for t, k in zip(tokens, kinds) if k == "digits"]
    read_out = bool(digit_tokens) and "other" not in kinds
    lead = next((i for i, k in enumerate(kinds) if k != "filler"), None)
    continues = open_digits > 0 and lead is not None and kinds[lead] == "digits"
    chosen = digit_tokens if read_out else [tokens[lead]] if continues else []
    groups = [group for token in chosen for group in _token_groups(token)]
    spans = sorted(spans + _uncovered(norm.text, groups, spans))
    count = sum(_digit_count(t) for t in digit_tokens)
    if read_out:
        opened = min(MAX_OPEN_DIGITS, open_digits + count)
    elif kinds and kinds[-1] == "digits":
        opened = _digit_count(tokens[-1])
    else:
        opened = 0
    return _render(text, norm, spans), opened


# -- evidence kept in state --------------------------------------------------------------------------------------
PARTIAL_EMAIL = re.compile(r"(?<![^\s@])[^\s@]*@[^\s@]*")


def mask_evidence(word: str) -> str:
    """What of a cue's evidence words may be kept in state: redacted, any '@' word masked as [EMAIL], and every
    digit of a run of three or more digits masked as '#'."""
    redacted = redact(word)
    norm = normalise(redacted)
    spans = [(m.start(), m.end(), "[EMAIL]") for m in PARTIAL_EMAIL.finditer(norm.text)]
    masked = _render(redacted, norm, spans)
    norm = normalise(masked)
    out, at = [], 0
    for run in RUN.finditer(norm.text):
        if sum(c.isdigit() for c in run.group(0)) < 3:
            continue
        start, end = norm.span(run.start(), run.end())
        out.append(masked[at:start])
        out.append("".join("#" if c.isdigit() else c for c in masked[start:end]))
        at = end
    out.append(masked[at:])
    return "".join(out)
