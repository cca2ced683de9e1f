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

Spoken (voice ASR): a run of at least six number words ("four one one one", "oh", "double eight", "forty one",
"sixty five", "6011 one one"), with fillers ("uh", "um"), commas and hyphens between and spelled letters among
them, is read as digits, each word its own group, and the rules above run on that reading; the spans found are
mapped back to the words. A spoken run of seven or more digits that no rule names is a [NUMBER] all the same:
nobody reads an order number aloud digit by digit more often than a card. Fewer than six number words stay text
("one or two things", "twenty nine ninety nine").

National Insurance numbers: two letters, six digits (any grouping, any separators) and an optional final A-D. HMRC's
prefix rules are not used: the fake QQ prefix, test data and a misheard letter expose the same six digits. The
shape alone is enough when it has its final letter and is written in capitals, without gaps, or with a prefix that
is no English word ("is 123456 a" is a sentence); without the letter it needs "NI", "NINO", "N.I." or "national
insurance" within 40 characters before. IBANs must pass mod-97, or be in capitals with a known country's length;
spelled ones ("g b 8 2 w e s t ...") must pass mod-97. An 8-digit yyyymmdd date and a Royal Mail S10 tracking
number (two letters, eight digits, its check digit, two letters) are kept.

Every rule is anchored and bounded, so redaction is linear in the text.
"""
from __future__ import annotations

import re
import string
from bisect import bisect_right
from itertools import accumulate

from copilot.text import normalise

# What earlier rules found is masked with this before later rules look, so they never match inside it.
MASK = "\x00"
DIGIT = re.compile(r"\d")
SEPARATOR = r"[ \n\-\u2010-\u2015\u2212./_,()*|:+~\u2022\u00b7\u2219]"
RUN = re.compile(rf"[+(]?\d+(?:{SEPARATOR}{{1,5}}\d+)*")
GROUP = re.compile(r"\d+")
# Outside a card, a comma or a line break ends a number: "items 101, 102, 103" is a list, not one number.
SPLIT = re.compile(r"[,\n]")

IBAN = re.compile(r"(?<![^\W_])[A-Z]{2}\d{2}(?:[ -]?[A-Z0-9]{4}){2,7}(?:[ -]?[A-Z0-9]{1,4})?(?![^\W_])", re.I)
IBAN_STRICT = re.compile(r"[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?")
# Spelled out, one character a word ("g b 8 2 w e s t 1 2 ..."): only a mod-97 pass at the country's length counts.
IBAN_SPELLED = re.compile(r"(?<![^\W_])[A-Z] [A-Z] \d ?\d(?: ?[A-Z0-9]){11,30}", re.I)
IBAN_LENGTHS = dict(
    (entry[:2], int(entry[2:])) for entry in
    "AD24 AE23 AL28 AT20 AZ28 BA20 BE16 BG22 BH22 BR29 CH21 CR22 CY28 CZ24 DE22 DK18 DO28 EE20 EG29 ES24 FI18 FO18 "
    "FR27 GB22 GE22 GI23 GL18 GR27 GT28 HR21 HU28 IE22 IL23 IS26 IT27 JO30 KW30 KZ20 LB28 LC32 LI21 LT20 LU20 LV21 "
    "MC27 MD24 ME22 MK19 MR27 MT31 MU30 NL18 NO15 PK24 PL28 PS29 PT25 QA29 RO24 RS22 SA24 SC31 SE24 SI19 SK24 SM27 "
    "TL23 TN24 TR26 UA29 VG24 XK20".split())
# Royal Mail S10 tracking numbers: 2 letters, 8 digits, a mod-11 check digit, 2 letters. Not personal data.
S10 = re.compile(r"(\d{8})(\d)(?=[A-Z]{2}(?![^\W_]))", re.I)  # digits first: a fast scan; the letters before in code
S10_WEIGHTS = (8, 6, 4, 2, 3, 5, 9, 7)
NINO_GAP = r"[ \-./_]{0,3}"
# Two letters (or glued to the word "NI"/"NINO"), six digits in any grouping, and an optional final letter; whether a
# match counts is decided in _ninos.
UK_NINO = re.compile(rf"(?:(?<![^\W_])|(?<=nino)|(?<=ni))(?P<prefix>[A-Z]{NINO_GAP}[A-Z]){NINO_GAP}"
                     rf"(?P<digits>\d(?:{NINO_GAP}\d){{5}})(?!{NINO_GAP}\d)(?:{NINO_GAP}(?P<suffix>[A-D]))?", re.I)
SIX_DIGITS = re.compile(rf"\d(?:{NINO_GAP}\d){{5}}")
NINO_WORD = re.compile(r"(?<![^\W_])(?:n\.? ?i\.?(?: ?no)?|nino|national insurance)(?![a-z])", re.I)
NINO_WORD_LOOK_BACK = 40
NINO_WORD_LOOK_AHEAD = 24
# Two-letter words that may stand before six digits and a lone letter in a sentence ("is 123456 a ...").
COMMON_PAIRS = frozenset("am an as at be by do go he if in is it me my no of ok on or so to up us we".split())
SSN_WORD = re.compile(r"\b(?:ssn|social|social security)\b", re.I)

# A number right after one of these words is a reference, not a person's data (unless it is a valid card).
REFERENCE = re.compile(
    r"\b(?:order|ticket|case|ref|reference|tracking|invoice|confirmation|booking|parcel|shipment|package|sku|"
    r"model|serial|part|flight|reservation|claim|incident|receipt|transaction|version|build|release|firmware|"
    r"item|product|po|batch|lot)\W{0,3}(?:(?:number|no|num|nr|id|code)\W{0,3})?(?:(?:is|was)\W{0,3})?"
    r"(?:[A-Za-z]{1,4}[-#/_:]?)?$", re.I)
UNIT_AFTER = re.compile(r" ?(?:%|percent|dollars?|pounds?|euros?|usd|gbp|eur|points?|miles?|km|kg|users?|people|"
                        r"items?|units?|bytes?|kb|mb|gb|tb|views|downloads)\b", re.I)
CURRENCY = "$£€¥₹"

AT = re.compile(r" ?@ ?| ?[(\[{<] ?at ?[)\]}>] ?| at (?:sign|symbol|the rate(?: of)?) | at ", re.I)
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
QUOTED_LOCAL = 66
# A mail provider named without its top-level domain ("jane underscore doe at gmail"): the name is the domain.
BARE_PROVIDER = re.compile(r"(?P<first>gmail|googlemail|hotmail|yahoo|ymail|outlook|icloud|aol|protonmail|proton|"
                           r"btinternet|virginmedia|talktalk|gmx|yandex|zoho|fastmail|comcast|sbcglobal)"
                           r"(?![\w-])(?! ?(?:\.|dot\b))", re.I)
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
    "people someone anyone everyone listed good bad best great m s re ve ll d".split())
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
    if text[end - 1:end] == '"':  # a quoted local part: "jane.doe"@example.com
        opening = text.rfind('"', max(0, end - QUOTED_LOCAL), end - 1)
        return opening if 0 <= opening < end - 2 else None
    window = text[max(0, end - LOCAL_LOOK_BACK):end][::-1]
    match = LOCAL_REVERSED.match(window)
    if not match:
        return None
    start = end - len(match.group(0).rstrip(".'-"))
    if start >= end:
        return None
    # A local part that ends in spoken digits ("sam dot smith ninety two at"): the digit words and the name before.
    word_start, word_end, words = start, end, 0
    while words < 8 and _is_number_word(text[word_start:word_end]) and text[word_start - 1:word_start] == " ":
        words += 1
        word_end = word_start - 1
        space = text.rfind(" ", max(0, word_end - 24), word_end)
        word_start = space + 1 if space >= 0 else max(0, word_end - 24)
    if words and word_start < word_end and not _is_number_word(text[word_start:word_end]):
        head = _local_start(text, word_end)
        return head if head is not None else start
    return start


def _is_number_word(word: str) -> bool:
    """Whether a word is one spoken digit group ("ninety", "two") or written digits."""
    return word.isdigit() or word.lower() in NUMBER_WORDS


def _spoken_ok(text: str, start: int, anchor: re.Match, domain: re.Match) -> bool:
    """Whether a bare "at" between a name and a domain reads as an email address, not an ordinary sentence."""
    local = text[start:anchor.start()]
    words = re.split(r"\W+", local.lower()) if local else [""]
    while len(words) > 1 and _is_number_word(words[-1]):  # "sam dot jones eighty one": the name is "jones"
        words.pop()
    last_word = words[-1]
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
        domain = ((SPOKEN_DOMAIN if spoken else DOMAIN).match(text, anchor.end())
                  or BARE_PROVIDER.match(text, anchor.end()))
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


def _yyyymmdd(digits: str) -> bool:
    """Whether eight digits read as a date (20240117): batch numbers and ticket ids carry them, phones do not."""
    return digits[:2] in ("19", "20") and "01" <= digits[4:6] <= "12" and "01" <= digits[6:] <= "31"


def _number_kind(text: str, groups: list[tuple[int, int]]) -> str | None:
    """The tag for one comma-free run of digit groups that holds no card, or None to keep it."""
    sizes = [e - s for s, e in groups]
    total = sum(sizes)
    start, end = groups[0][0], groups[-1][1]
    if sizes == [3, 2, 4]:
        return "[NATIONAL_ID]"
    if sizes[0] == 8 and _yyyymmdd(text[start:groups[0][1]]):
        return _number_kind(text, groups[1:]) if len(groups) > 1 else None
    if total < 7 or REFERENCE.search(text, max(0, start - 48), start):
        return None
    before = text[start - 1] if start else ""
    if before == "+" or text.startswith("00", start):
        return "[PHONE]" if total <= 15 else "[NUMBER]"
    if total >= 13:
        return "[NUMBER]"
    if total == 9 and SSN_WORD.search(text, max(0, start - NINO_WORD_LOOK_BACK), start):
        return "[NATIONAL_ID]"
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


def _iban_kept(candidate: str) -> bool:
    """Whether an IBAN-shaped token is one: mod-97 valid, or in capitals at its country's length (one digit
    misheard still leaves the other twenty personal)."""
    compact = re.sub(r"[ -]", "", candidate)
    return _iban_ok(candidate) or (IBAN_STRICT.fullmatch(candidate) is not None
                                   and IBAN_LENGTHS.get(compact[:2]) == len(compact))


def _ibans(text: str, spelled: bool = False) -> list[tuple[int, int, str]]:
    """IBAN spans: mod-97 valid in any case, or written in capitals as banks print them; or (in a spoken text)
    spelled out."""
    spans = [(m.start(), m.end(), "[IBAN]") for m in IBAN.finditer(text) if _iban_kept(m.group(0))]
    if spans:
        text = _mask(text, spans)
    for m in IBAN_SPELLED.finditer(text) if spelled else ():
        chars = [i for i, c in enumerate(m.group(0)) if c != " "]
        length = IBAN_LENGTHS.get(m.group(0)[:3].replace(" ", "").upper())
        if length and len(chars) >= length and _iban_ok(m.group(0)[:chars[length - 1] + 1].replace(" ", "")):
            spans.append((m.start(), m.start() + chars[length - 1] + 1, "[IBAN]"))
    return spans


def _ninos(text: str) -> list[tuple[int, int, str]]:
    """UK National Insurance number spans: see the module's docstring for when the shape is enough."""
    spans: list[tuple[int, int, str]] = []
    done = 0
    for six in SIX_DIGITS.finditer(text):  # digits first, a fast scan; then the letters around them
        m = UK_NINO.search(text, max(done, six.start() - 12), min(len(text), six.end() + 8))
        if not m or m.start("digits") != six.start():
            continue
        start, end = m.start(), m.end()
        done = end
        suffix = m.group("suffix")
        if suffix and end < len(text) and text[end].isalnum() and not (suffix.isupper() and text[end].islower()):
            suffix, end = None, m.end("digits")  # "...56 Cars": the letter starts a word
        glued = start > 0 and text[start - 1].isalpha()
        context = glued or NINO_WORD.search(text, max(0, start - NINO_WORD_LOOK_BACK), start) is not None or \
            NINO_WORD.search(text, end, end + NINO_WORD_LOOK_AHEAD) is not None
        if not context:
            prefix, whole = m.group("prefix"), text[start:end]
            shaped = prefix.isupper() and suffix.isupper() if suffix else False
            tight = suffix is not None and whole.isalnum()
            letters = re.sub(r"[^\w]", "", prefix).lower()
            plain = suffix is not None and letters.isalpha() and letters not in COMMON_PAIRS
            if not (shaped or tight or plain) or REFERENCE.search(text, max(0, start - 48), start):
                continue
        spans.append((start, end, "[NATIONAL_ID]"))
    return spans


def _kept(text: str) -> str:
    """The text with what looks like personal data but is not (S10 tracking numbers) masked from the rules."""
    keep = [(m.start() - 2, m.end() + 2, "") for m in S10.finditer(text)
            if m.start() >= 2 and text[m.start() - 2:m.start()].isalpha() and not text[m.start() - 3:m.start() - 2].isalnum()
            and _s10_ok(m.group(1), m.group(2))]
    return _mask(text, keep)


def _s10_ok(digits: str, check: str) -> bool:
    """Whether a Royal Mail S10 number's check digit is right (weights 8 6 4 2 3 5 9 7, mod 11)."""
    rest = 11 - sum(int(d) * w for d, w in zip(digits, S10_WEIGHTS)) % 11
    return str({10: 0, 11: 5}.get(rest, rest)) == check


O_NEXT_TO_DIGIT = re.compile(r"\d[Oo]|[Oo]\d")
O_FOR_ZERO = re.compile(r"(?<![^\W_])(?=[\dOo]*\d)(?=[\dOo]*[Oo])[\dOo]{2,}(?![^\W_])")


def _zeros(text: str) -> str:
    """The text with a letter O typed for zero inside a digit group read as 0 ("07700 9OO 123"); same length."""
    if not O_NEXT_TO_DIGIT.search(text):
        return text
    return O_FOR_ZERO.sub(lambda m: m.group(0).replace("O", "0").replace("o", "0"), text)


def _find_written(text: str, spoken: bool = False) -> list[tuple[int, int, str]]:
    """Disjoint spans (start, end, tag) of personal data in a normalised text (digits as digits), in order."""
    spans = _emails(text) if ("@" in text or "at" in text.lower()) else []
    if DIGIT.search(text):
        text = _kept(text)
        spans += _ibans(_mask(text, spans), spelled=spoken)
        spans += _ninos(_mask(text, spans))
        spans += _numbers(_zeros(_mask(text, spans)))
    return sorted(spans)


# -- spoken numbers -----------------------------------------------------------------------------------------------
UNITS = dict(zip("zero oh o nought one two three four five six seven eight nine".split(), "0000123456789"))
TEENS = {w: str(10 + i) for i, w in enumerate(
    "ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split())}
TENS = {w: str(i + 2) for i, w in enumerate("twenty thirty forty fifty sixty seventy eighty ninety".split())}
REPEATS = {"double": 2, "triple": 3}
FILLERS = frozenset("uh um umm uhm er erm ah eh hmm mm dash hyphen".split())  # dropped inside a run
# Letters spelled in an id as ASR writes them; "you", "are", "why", "oh" are too common (or a digit) to count.
LETTER_SOUNDS = {"queue": "q", "cue": "q", "bee": "b", "see": "c", "dee": "d", "gee": "g", "jay": "j", "kay": "k",
                 "pee": "p", "tee": "t", "vee": "v", "ex": "x", "zed": "z", "zee": "z", "aitch": "h"}
NUMBER_WORDS = frozenset(UNITS) | frozenset(TEENS) | frozenset(TENS)
SPOKEN_TOKEN = re.compile(
    r"(?<![^\W_])(?:" + "|".join(sorted(NUMBER_WORDS | set(REPEATS) | {"hundred"} | FILLERS | set(LETTER_SOUNDS),
                                         key=len, reverse=True)) + r"|\d+|[a-z])(?![^\W_])", re.I)
WORD_BREAKS = str.maketrans(dict.fromkeys(string.punctuation + "\u2010\u2011\u2012\u2013\u2014\u2015", " "))
SPOKEN_GAP = re.compile(r"[ ,\-\u2010-\u2015]{1,3}")
# A spoken run needs this many number words (written digit groups among them count too) and six digits in all:
# "one or two things", "twenty nine ninety nine a month" stay as they are.
MIN_SPOKEN_WORDS = 5
MIN_SPOKEN_ONLY = 3
MIN_SPOKEN_DIGITS = 6
MIN_UNNAMED_DIGITS = 7


def _spoken_groups(text: str, tokens: list[re.Match]) -> tuple[list[tuple[str, int, int, bool]], int, int, int]:
    """One run of spoken tokens as groups (digits or a letter, start, end, is-digits), with its count of number
    words and written digit groups, of number words alone, and of digits."""
    groups: list[tuple[str, int, int, bool]] = []
    words = spoken = digits = 0
    repeat, repeat_start, i = 1, 0, 0
    while i < len(tokens):
        token, word = tokens[i], tokens[i].group(0).lower()
        start, end, i = token.start(), token.end(), i + 1
        if word in REPEATS:
            repeat, repeat_start = REPEATS[word], start
            continue
        if word in FILLERS or word == "hundred":
            continue
        nxt = tokens[i].group(0).lower() if i < len(tokens) else ""
        if word.isdigit():
            group = word
        elif word in UNITS:
            group, start = UNITS[word] * repeat, (repeat_start if repeat > 1 else start)
            if nxt == "hundred" and repeat == 1:  # "eight hundred"
                group, end, i = group + "00", tokens[i].end(), i + 1
        elif word in TEENS:
            group = TEENS[word]
        elif word in TENS:
            group = TENS[word] + "0"
            if nxt in UNITS and UNITS[nxt] != "0" and text[end:tokens[i].start()] in (" ", "-"):  # "forty one"
                group, end, i, words = TENS[word] + UNITS[nxt], tokens[i].end(), i + 1, words + 1
        else:
            groups.append((LETTER_SOUNDS.get(word, word), start, end, False))
            repeat = 1
            continue
        repeat = 1
        words += 1
        spoken += not word.isdigit()
        digits += len(group)
        groups.append((group, start, end, True))
    return groups, words, spoken, digits


def _spoken(text: str) -> tuple[str, list[int], list[int], list[tuple[int, int, int]]] | None:
    """The text with each spoken run of digits read as digit groups ("four one one one" is "4 1 1 1"), a map from
    each of its characters to the original span, and each run's digit extent and count; None when there is none."""
    if sum(map(NUMBER_WORDS.__contains__, text.lower().translate(WORD_BREAKS).split())) < MIN_SPOKEN_ONLY:
        return None  # the usual snippet: C-level translate and split, and a set look-up a word
    runs: list[list[re.Match]] = []
    for token in SPOKEN_TOKEN.finditer(text):
        if runs and SPOKEN_GAP.fullmatch(text, runs[-1][-1].end(), token.start()):
            runs[-1].append(token)
        else:
            runs.append([token])
    pieces: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    extents: list[tuple[int, int, int]] = []
    at = 0
    for run in runs:
        if len(run) < MIN_SPOKEN_WORDS:
            continue
        groups, words, spoken, digits = _spoken_groups(text, run)
        if words < MIN_SPOKEN_WORDS or spoken < MIN_SPOKEN_ONLY or digits < MIN_SPOKEN_DIGITS:
            continue
        pieces.append(text[at:groups[0][1]])
        starts.extend(range(at, groups[0][1]))
        ends.extend(range(at + 1, groups[0][1] + 1))
        first_digit = last_digit = None
        for n, (group, start, end, is_digits) in enumerate(groups):
            if n:
                pieces.append(" ")
                starts.append(groups[n - 1][2])
                ends.append(start)
            if is_digits:
                first_digit = len(starts) if first_digit is None else first_digit
                last_digit = len(starts) + len(group)
            pieces.append(group)
            starts.extend([start] * len(group))
            ends.extend([end] * len(group))
        extents.append((first_digit, last_digit, digits))
        at = groups[-1][2]
    if not extents:
        return None
    pieces.append(text[at:])
    starts.extend(range(at, len(text)))
    ends.extend(range(at + 1, len(text) + 1))
    return "".join(pieces), starts, ends, extents


def _find(text: str) -> list[tuple[int, int, str]]:
    """Disjoint spans (start, end, tag) of personal data in a normalised text, in order; spoken digits read as
    digits, and a long spoken run that no rule names a [NUMBER]."""
    spoken = _spoken(text)
    if spoken is None:
        return _find_written(text)
    reading, starts, ends, extents = spoken
    spans = _find_written(reading, spoken=True)
    span_ends = [e for _, e, _ in spans]
    spans += [(s, e, "[NUMBER]") for s, e, digits in extents
              if digits >= MIN_UNNAMED_DIGITS and not _overlaps(spans, span_ends, s, e)]
    return sorted((starts[s], ends[e - 1], tag) for s, e, tag in spans)


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


# An email address read out over several snippets: the state's flag bit (the digit count stays below it).
EMAIL_OPEN = 128
TAIL = 160
JOINER = r"(?:\.|_| dot | underscore | dash | hyphen )"
TRAILING_EMAIL = re.compile(
    rf"(?<![^\W_])(?P<local>[\w%+'-]{{1,64}}+(?:{JOINER}[\w%+'-]{{1,64}}+){{0,5}})"
    rf"(?P<anchor>(?: ?@ ?| at\b ?| ?[(\[{{<] ?at ?[)\]}}>] ?)(?:{LABEL}(?:{DOT}{LABEL}){{0,5}})?)?[\s.,!?]*$", re.I)
EMAIL_HINT = re.compile(r"[@_\d]|\.\w| (?:dot|underscore|dash|hyphen|at)\b", re.I)
SPOKEN_JOINER = re.compile(r" (?:underscore|dash|hyphen) ", re.I)
LEADING_EMAIL = re.compile(
    rf" ?(?P<joiner>@ ?|[(\[{{<] ?at ?[)\]}}>] ?|at (?:sign |symbol )?|dot |underscore |dash |hyphen |[._-](?=\w))?"
    rf"(?P<rest>{LABEL}(?:(?:{DOT}| at | ?@ ?|{JOINER}){LABEL}){{0,6}})?", re.I)
TRAILING_NINO = re.compile(
    rf"(?<![^\W_])[A-Z]{NINO_GAP}[A-Z]{NINO_GAP}\d(?:{NINO_GAP}\d){{0,5}}(?:{NINO_GAP}[A-D])?[\s.,]*$", re.I)
TRAILING_IBAN = re.compile(r"(?<![^\W_])(?P<country>[A-Z]{2})\d{2}(?P<groups>(?:[ -]?[A-Z0-9]{1,4}){0,7})[\s.,]*$",
                           re.I)
IBAN_WORD = re.compile(r"\b(?:iban|bank|account)\b", re.I)


def _open_email(text: str, spans: list[tuple[int, int, str]]) -> tuple[int, int, str] | None:
    """The span of an email address that the snippet ends in the middle of ("my email is jane.doe84", "its tom
    underscore baker at example"), or None: a name with a joiner, a digit or an '@' after an email word, or a spoken
    joiner ("underscore") even without one."""
    offset = max(0, len(text) - TAIL)
    if not EMAIL_HINT.search(text, offset):
        return None
    match = TRAILING_EMAIL.search(text, offset)
    if not match or (spans and spans[-1][1] > match.start()):
        return None
    local, anchor = match.group("local"), match.group("anchor")
    if local.isdigit() or re.split(r"\W+", local.lower())[-1] in NOT_A_NAME:
        return None
    joined = re.search(rf"{JOINER}|\d", local, re.I) is not None
    strong = SPOKEN_JOINER.search(local) is not None or bool(anchor)
    email_word = EMAIL_WORD.search(text, max(0, match.start() - EMAIL_WORD_LOOK_BACK), match.start()) is not None
    if not (joined or anchor) or not (email_word or strong):
        return None
    return match.start(), match.end("anchor") if anchor else match.end("local"), "[EMAIL]"


def _email_continued(text: str, spans: list[tuple[int, int, str]]) -> tuple[int, int, str] | None:
    """The span of the rest of an open email address that a snippet starts with ("at example", "dot org",
    "@example.com"), or None."""
    match = LEADING_EMAIL.match(text)
    if not match or not (match.group("joiner") or match.group("rest")) or (spans and spans[0][0] < match.end()):
        return None
    rest = match.group("rest") or ""
    first = re.split(r"\W+", rest.lower())[0] if rest else ""
    if not match.group("joiner") and not (re.search(DOT, rest, re.I) or first in MAIL_PROVIDERS):
        return None
    if first in NOT_A_DOMAIN or first in NOT_A_NAME:  # "at the moment", "at home"
        return None
    return match.start() + (text[:1] == " "), match.end(), "[EMAIL]"


def _open_id(text: str, spans: list[tuple[int, int, str]]) -> tuple[int, int, str] | None:
    """The span of a National Insurance number or IBAN that the snippet ends in the middle of ("my ni number is
    QQ 12", "iban is GB82 WEST"), or None."""
    offset = max(0, len(text) - TAIL)
    if not DIGIT.search(text, max(0, len(text) - 8)):  # both end in digits, or in a letter just after them
        return None
    for pattern, tag in ((TRAILING_NINO, "[NATIONAL_ID]"), (TRAILING_IBAN, "[IBAN]")):
        match = pattern.search(text, offset)
        if not match or (spans and spans[-1][1] > match.start()):
            continue
        before = text[max(0, match.start() - NINO_WORD_LOOK_BACK):match.start()]
        if tag == "[IBAN]":
            named = IBAN_WORD.search(before) is not None
            printed = match.group("country") in IBAN_LENGTHS and match.group("groups").strip(" -") != ""
            if not (named or printed):
                continue
        elif not NINO_WORD.search(before):
            continue
        return match.start(), match.start() + len(match.group(0).rstrip(" .,")), tag
    return None


CARD_GROUPS = re.compile(r"\d{4}(?:[ -]\d{4}){0,2}")  # how a card's next groups are read out: fours


def redact_snippet(text: str, open_digits: int) -> tuple[str, int]:
    """One snippet redacted as redact() does, plus a number or email read out over several snippets: a snippet of
    digit groups and read-out words has every group redacted, and so has the leading group of one that continues an
    open number. The state goes in and the new one comes out with the text: the count of digits left open, plus
    EMAIL_OPEN when an email address was left open; never any of the data."""
    email_open, open_digits = bool(open_digits & EMAIL_OPEN), open_digits & (EMAIL_OPEN - 1)
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
    if read_out:
        chosen = digit_tokens
    elif open_digits > 0:  # a number being read out goes on, whatever words come around its next groups
        chosen = [t for t in digit_tokens if CARD_GROUPS.fullmatch(t.group(0)) or t is tokens[lead]]
    else:
        chosen = []
    groups = [group for token in chosen for group in _token_groups(token)]
    spans = sorted(spans + _uncovered(norm.text, groups, spans))
    count = sum(_digit_count(t) for t in digit_tokens)
    if read_out:
        opened = min(MAX_OPEN_DIGITS, open_digits + count)
    elif kinds and kinds[-1] == "digits":
        opened = (open_digits + sum(_digit_count(t) for t in chosen)) if chosen else _digit_count(tokens[-1])
    else:
        opened = 0
    still_open = False
    leading = _email_continued(norm.text, spans) if email_open else None
    if leading:
        spans = sorted([leading] + [s for s in spans if s[0] >= leading[1]])
        still_open = not norm.text[leading[1]:].strip(" .,!?")
    trailing = _open_email(norm.text, spans)
    partial = _open_id(norm.text, spans) if trailing is None else None
    if trailing or partial:
        spans = sorted([s for s in spans if s[1] <= (trailing or partial)[0]] + [trailing or partial])
        still_open = still_open or trailing is not None
        if partial:
            opened = max(opened, 1, sum(c.isdigit() for c in norm.text[partial[0]:partial[1]]))
    return _render(text, norm, spans), min(MAX_OPEN_DIGITS, opened) | (EMAIL_OPEN if still_open else 0)


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
