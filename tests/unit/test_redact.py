"""PII redaction: what is replaced, and what is left alone."""
import pytest
from hypothesis import given
from hypothesis import strategies as st

from copilot.redact import luhn_ok, redact


@pytest.mark.parametrize("text, kind", [
    ("my card is 4111 1111 1111 1111 thanks", "[CARD]"),
    ("card 5500-0000-0000-0004", "[CARD]"),
    ("4012888888881881", "[CARD]"),
    ("email me at jo.bloggs+bills@example.co.uk please", "[EMAIL]"),
    ("call me on +44 7700 900123", "[PHONE]"),
    ("my number is (555) 010-4477", "[PHONE]"),
    ("ssn 123-45-6789", "[NATIONAL_ID]"),
    ("NI number AB 12 34 56 C", "[NATIONAL_ID]"),
    ("pay to GB82 WEST 1234 5698 7654 32", "[IBAN]"),
])
def test_personal_data_is_replaced_by_its_kind(text, kind):
    assert kind in redact(text)


def test_the_digits_of_a_card_never_survive():
    assert "1111" not in redact("4111 1111 1111 1111")


@pytest.mark.parametrize("text", [
    "order 12345 arrived late",
    "I was charged 40 pounds on the 12th",
    "tracking 1234567812345678 fails luhn",
])
def test_ordinary_numbers_are_kept(text):
    assert redact(text) == text


def test_luhn_accepts_valid_and_rejects_invalid_numbers():
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")


@given(st.text(max_size=200))
def test_redaction_never_raises_and_is_idempotent(text):
    once = redact(text)
    assert redact(once) == once
