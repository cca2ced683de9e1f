"""Every event payload is validated in one place; any JSON either passes or raises a coded error."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from copilot.errors import CopilotError, InvalidPayload, TextTooLong
from copilot.protocol import EVENTS, validate

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=50),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(EVENTS)), json_values)
def test_any_json_payload_passes_or_gets_a_coded_error(event, payload):
    try:
        clean = validate(event, payload, 4000)
    except CopilotError as error:
        assert error.code in {"invalid_payload", "text_too_long"}
    else:
        assert set(clean) <= set(EVENTS[event])


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_any_unicode_text_is_accepted_as_snippet_text(text):
    payload = {"conversation_id": "c1", "snippet_id": "s1", "speaker": "customer", "text": text, "final": True}
    if "\x00" in text:
        with pytest.raises(InvalidPayload):
            validate("transcript.snippet", payload, 4000)
    else:
        assert validate("transcript.snippet", payload, 4000)["text"] == text


def test_text_over_the_limit_is_too_long():
    with pytest.raises(TextTooLong):
        validate("transcript.snippet", {"conversation_id": "c", "snippet_id": "s", "speaker": "customer",
                                        "text": "x" * 11, "final": True}, 10)


@pytest.mark.parametrize("value", ["", " ", "a" * 129, "has space", "emoji😀", "../etc", 5, None, "c-1\n", "c-1\r\n"])
def test_ids_are_short_plain_tokens(value):
    with pytest.raises(InvalidPayload):
        validate("conversation.end", {"conversation_id": value}, 100)


def test_nan_timestamp_is_refused():
    with pytest.raises(InvalidPayload):
        validate("transcript.snippet", {"conversation_id": "c", "snippet_id": "s", "speaker": "agent", "text": "hi",
                                        "final": True, "ts": float("nan")}, 100)


def test_a_token_refresh_takes_one_token_string():
    assert validate("token.refresh", {"token": "eyJ0Ijoi.YWNtZSJ9.abc-_="}, 100) == {"token": "eyJ0Ijoi.YWNtZSJ9.abc-_="}


@pytest.mark.parametrize("value", ["", "has space", "t\n", "x" * 2049, 5, None])
def test_a_token_refresh_refuses_anything_but_a_token(value):
    with pytest.raises(InvalidPayload):
        validate("token.refresh", {"token": value}, 100)


@pytest.mark.parametrize("field, value", [("text", "\ud800"), ("text", "fine until here \udfff"), ("text", "\udc80x")])
def test_snippet_text_with_a_lone_surrogate_is_refused(field, value):
    with pytest.raises(InvalidPayload, match="surrogate"):
        validate("transcript.snippet", {"conversation_id": "c", "snippet_id": "s", "speaker": "customer",
                                        field: value, "final": True}, 100)


@pytest.mark.parametrize("field", ["queue", "customer_ref", "locale"])
def test_a_name_field_with_a_lone_surrogate_is_refused(field):
    with pytest.raises(InvalidPayload, match="surrogate"):
        validate("conversation.start", {"conversation_id": "c", "channel": "chat", field: "q\ud83d"}, 100)


def test_text_with_a_proper_surrogate_pair_s_character_is_accepted():
    assert validate("conversation.start", {"conversation_id": "c", "channel": "chat", "queue": "billing 😀"},
                    100)["queue"] == "billing 😀"
