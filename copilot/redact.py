"""PII redaction (pure): card numbers (Luhn-checked), emails, phone numbers, national ids, IBANs.

Applied to every transcript text before it is stored or logged. Replacements keep the kind ("[CARD]") so the
log stays readable, and never the digits.
"""
from __future__ import annotations

import re

CARD_CANDIDATE = re.compile(r"(?<![\w-])(?:\d[ -]?){12,18}\d(?![\w-])")
EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b")
US_SSN = re.compile(r"\b\d{3}[- ]\d{2}[- ]\d{4}\b")
UK_NINO = re.compile(r"\b(?!BG|GB|NK|KN|TN|NT|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b",
                     re.IGNORECASE)
PHONE = re.compile(r"(?<![\w])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d(?:[ .-]?\d){6,13}(?![\w])")


def luhn_ok(digits: str) -> bool:
    """Whether a digit string passes the Luhn checksum that payment card numbers carry."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = int(ch)
        if i % 2 == 1:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def _card(match: re.Match) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    return "[CARD]" if 13 <= len(digits) <= 19 and luhn_ok(digits) else match.group(0)


def redact(text: str) -> str:
    """The text with personal data replaced by [CARD], [EMAIL], [IBAN], [NATIONAL_ID] and [PHONE]."""
    text = EMAIL.sub("[EMAIL]", text)
    text = IBAN.sub("[IBAN]", text)
    text = CARD_CANDIDATE.sub(_card, text)
    text = US_SSN.sub("[NATIONAL_ID]", text)
    text = UK_NINO.sub("[NATIONAL_ID]", text)
    return PHONE.sub("[PHONE]", text)
