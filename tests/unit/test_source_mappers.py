"""Each transcript source's mapper over its fixture (a session written from the vendor's public documentation,
tests/data/sources/README.md), malformed messages among good ones, the endpoint's options, and Twilio's request
signature against the example on Twilio's webhook security page."""
import base64
import json
from pathlib import Path

import pytest

from copilot.errors import InvalidPayload
from copilot.settings import InvalidSetting, Settings
from copilot.sources import assemblyai, contact_lens, deepgram, google, transcribe, twilio
from copilot.sources.contract import MAX_UTTERANCES, Start, in_order
from copilot.sources.registry import SOURCES, Options, options_from

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "sources"
NAMES = sorted(p.stem for p in FIXTURES.glob("*.json"))
# what each session carries besides utterances: metadata, keep-alives, partials that have no id of their own
IGNORED = {"assemblyai": 4, "contact-lens": 2, "deepgram": 10, "google": 10, "transcribe": 1,
           "transcribe-call-analytics": 1, "twilio": 9}


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def replay(name: str):
    """Every request of a fixture through its mapper, one at a time, as the endpoint would take them."""
    doc = fixture(name)
    batches = [SOURCES[doc["source"]](r.get("body", r.get("form")), options_from(r["query"]))
               for r in doc["requests"]]
    return doc, batches


def first_finals(batches) -> list:
    """Each utterance's final as it was first taken (a final again is a duplicate: AssemblyAI's formatted one)."""
    finals: dict[str, object] = {}
    for u in (u for b in batches for u in b.utterances if u.final):
        finals.setdefault(u.utterance_id, u)
    return list(finals.values())


def test_every_source_has_a_fixture_and_the_fixtures_readme_names_each_one_with_its_doc_page():
    sources = {fixture(name)["source"] for name in NAMES}
    assert sources == set(SOURCES)
    readme = (FIXTURES / "README.md").read_text()
    for name in NAMES:
        assert f"`{name}.json`" in readme and fixture(name)["_source"] in readme


@pytest.mark.parametrize("name", NAMES)
def test_a_fixture_maps_to_its_turns_in_order_with_their_speakers_and_its_end(name):
    doc, batches = replay(name)
    finals = first_finals(batches)
    assert [{"speaker": u.speaker, "text": u.text} for u in finals] == doc["expected"]
    assert {u.conversation_id for b in batches for u in b.utterances} == {doc["conversation_id"]}
    assert {cid for b in batches for cid in b.ended} == set(doc["ended"])
    assert all(b.refused == [] for b in batches)


@pytest.mark.parametrize("name", NAMES)
def test_each_final_has_an_id_of_its_own_and_every_interim_shares_its_final_s_id(name):
    doc, batches = replay(name)
    utterances = [u for b in batches for u in b.utterances]
    finals = [u.utterance_id for u in utterances if u.final]
    assert len(set(finals)) == len(doc["expected"])  # a final again (AssemblyAI's formatted one) repeats its id
    assert {u.utterance_id for u in utterances if not u.final} <= set(finals)


@pytest.mark.parametrize("name", [n for n in NAMES if n != "assemblyai"])  # that one is a stream per speaker
def test_the_same_fixture_sent_as_one_list_maps_to_the_same_utterances(name):
    doc, batches = replay(name)
    one_by_one = [u for b in batches for u in b.utterances]
    whole = SOURCES[doc["source"]]([r.get("body", r.get("form")) for r in doc["requests"]],
                                   options_from(doc["requests"][0]["query"]))
    assert [u.utterance_id for u in in_order(whole.utterances)] == [u.utterance_id for u in in_order(one_by_one)]
    assert [u.text for u in in_order(whole.utterances) if u.final] == [t["text"] for t in doc["expected"]]


@pytest.mark.parametrize("name", NAMES)
def test_metadata_keep_alives_and_id_less_partials_are_counted_as_ignored(name):
    _, batches = replay(name)
    assert sum(b.ignored for b in batches) == IGNORED[name]


@pytest.mark.parametrize("name", NAMES)
def test_a_malformed_message_among_good_ones_is_refused_with_its_index_and_the_rest_are_read(name):
    doc = fixture(name)
    messages = [r.get("body", r.get("form")) for r in doc["requests"] if r["query"] == doc["requests"][-1]["query"]]
    good = SOURCES[doc["source"]](messages, options_from(doc["requests"][-1]["query"]))
    broken = messages[:2] + ["not an object", {"type": 7, "EventType": [], "TranscriptionEvent": None}] + messages[2:]
    mapped = SOURCES[doc["source"]](broken, options_from(doc["requests"][-1]["query"]))
    assert [(r["index"], r["code"]) for r in mapped.refused] == [(2, "invalid_payload"), (3, "invalid_payload")]
    assert mapped.utterances == good.utterances and mapped.ended == good.ended


def lens(*segments, kind="SEGMENTS", contact="c-lens-1"):
    return {"Version": "1.0.0", "Channel": "VOICE", "ContactId": contact, "EventType": kind, "Segments": list(segments)}


def test_contact_lens_joins_a_turn_s_utterance_pieces_and_ignores_other_participants():
    piece = {"ParticipantRole": "CUSTOMER", "TranscriptId": "t-1", "Id": "u-2", "PartialContent": "on my bill",
             "BeginOffsetMillis": 900, "EndOffsetMillis": 1500}
    first = {**piece, "Id": "u-1", "PartialContent": "a charge", "BeginOffsetMillis": 100, "EndOffsetMillis": 900}
    bot = {"Transcript": {"ParticipantRole": "SYSTEM", "Id": "t-2", "Content": "Please hold.",
                          "BeginOffsetMillis": 0, "EndOffsetMillis": 50}}
    mapped = contact_lens.batch(lens({"Utterance": piece}, {"Utterance": first}, bot), Options())
    assert [(u.utterance_id, u.text, u.final, u.start_ms) for u in mapped.utterances] == [
        ("t-1", "on my bill", False, 900.0), ("t-1", "a charge on my bill", False, 100.0)]
    assert in_order(mapped.utterances)[0].text == "a charge on my bill"


def test_contact_lens_marks_a_turn_s_pieces_for_the_service_to_join_across_bodies_and_its_final_is_no_piece():
    piece = {"ParticipantRole": "CUSTOMER", "TranscriptId": "t-1", "Id": "u-1", "PartialContent": "a charge",
             "BeginOffsetMillis": 100, "EndOffsetMillis": 900}
    final = {"ParticipantRole": "CUSTOMER", "Id": "t-1", "Content": "A charge on my bill.", "BeginOffsetMillis": 100,
             "EndOffsetMillis": 1500}
    mapped = contact_lens.batch([lens({"Utterance": piece}), lens({"Transcript": final})], Options())
    assert [(u.utterance_id, u.final, u.piece) for u in mapped.utterances] == [("t-1", False, True), ("t-1", True, False)]


def test_contact_lens_reads_a_lambda_kinesis_event_record_by_record_each_indexed_by_its_place():
    good = {"kinesis": {"data": base64.b64encode(json.dumps(lens({"Transcript": {
        "ParticipantRole": "AGENT", "Id": "t-3", "Content": "Let me check."}})).encode()).decode()}}
    mapped = contact_lens.batch({"Records": [{"kinesis": {"data": "%%%"}}, good]}, Options())
    assert [(r["index"], r["code"]) for r in mapped.refused] == [(0, "invalid_payload")]
    assert [(u.text, mapped.position(n)) for n, u in enumerate(mapped.utterances)] == [("Let me check.", 1)]


def test_contact_lens_reads_a_kinesis_record_or_an_eventbridge_envelope_and_a_failed_session_ends_it():
    event = {"Version": "1.0.0", "ContactId": "c-lens-2", "EventType": "FAILED"}
    record = {"Data": base64.b64encode(json.dumps(event).encode()).decode(), "PartitionKey": "c-lens-2"}
    assert contact_lens.batch(record, Options()).ended == ["c-lens-2"]
    assert contact_lens.batch({"detail-type": "Contact Lens", "detail": event}, Options()).ended == ["c-lens-2"]
    assert contact_lens.batch({"Data": "%%%"}, Options()).refused[0]["code"] == "invalid_payload"


def test_contact_lens_refuses_a_participant_role_it_does_not_know():
    turn = {"Transcript": {"ParticipantRole": "ROBOT", "Id": "t-9", "Content": "Beep."}}
    assert "participant role" in contact_lens.batch(lens(turn), Options()).refused[0]["message"]


def test_a_source_id_that_is_not_an_id_here_becomes_a_stable_digest_but_a_conversation_id_is_taken_as_it_is():
    turn = {"Transcript": {"ParticipantRole": "AGENT", "Id": "id with spaces/and slashes", "Content": "Hello."}}
    ids = {contact_lens.batch(lens(turn), Options()).utterances[0].utterance_id for _ in range(2)}
    assert len(ids) == 1 and ids.pop().startswith("h")
    refused = contact_lens.batch(lens(turn, contact="not an id"), Options()).refused
    assert refused[0]["code"] == "invalid_payload" and "conversation id" in refused[0]["message"]


def callback(**fields):
    return {"AccountSid": "AC1", "CallSid": "CA9", "TranscriptionSid": "GT1", "SequenceId": "4",
            "TranscriptionEvent": "transcription-content", "Track": "inbound_track", "Final": "true",
            "TranscriptionData": json.dumps({"transcript": "I want a manager.", "confidence": 0.91}), **fields}


def test_twilio_names_an_utterance_by_its_transcription_and_the_call_where_the_callback_names_none():
    restarted = twilio.batch([callback(), callback(TranscriptionSid="GT2")], Options())
    assert [u.utterance_id for u in restarted.utterances] == ["GT1.inbound_track.4", "GT2.inbound_track.4"]
    fields = callback()
    fields.pop("TranscriptionSid")
    assert twilio.batch(fields, Options()).utterances[0].utterance_id == "CA9.inbound_track.4"


def test_twilio_maps_tracks_through_channels_and_ignores_partials_which_carry_no_utterance_id():
    swapped = twilio.batch(callback(), Options(channels=("agent", "customer")))
    assert [(u.utterance_id, u.speaker, u.final) for u in swapped.utterances] == [("GT1.inbound_track.4", "agent", True)]
    partial = twilio.batch(callback(Final="false"), Options())
    assert (partial.utterances, partial.ignored) == ([], 1)


@pytest.mark.parametrize("fields", [{"TranscriptionData": "{not json"}, {"TranscriptionData": "[1]"},
                                    {"Track": "both_tracks"}, {"Final": "maybe"}, {"CallSid": ""}])
def test_twilio_refuses_a_callback_whose_fields_are_not_as_documented(fields):
    assert twilio.batch(callback(**fields), Options()).refused[0]["code"] == "invalid_payload"


def results(channel=(0, 1), start=1.5, final=True, words=(), request="r-1", text="I'm so frustrated."):
    return {"type": "Results", "channel_index": list(channel), "start": start, "duration": 2.0, "is_final": final,
            "channel": {"alternatives": [{"transcript": text, "words": list(words)}]},
            "metadata": {"request_id": request}}


def test_deepgram_names_the_utterance_by_request_channel_and_start_and_the_diarized_speaker_wins_on_one_channel():
    words = [{"word": "so", "speaker": 1}, {"word": "frustrated", "speaker": 1}, {"word": "i'm", "speaker": 0}]
    mapped = deepgram.batch(results(words=words), Options(conversation_id="c-dg"))
    assert [(u.utterance_id, u.speaker, u.start_ms, u.end_ms) for u in mapped.utterances] == [
        ("r-1.ch0.1500", "agent", 1500.0, 3500.0)]
    stereo = deepgram.batch(results(channel=(1, 2), words=words[2:]), Options(conversation_id="c-dg"))
    assert stereo.utterances[0].speaker == "agent"  # multichannel: the channel decides
    told = deepgram.batch(results(words=words), Options(conversation_id="c-dg", speaker="customer"))
    assert told.utterances[0].speaker == "customer"


@pytest.mark.parametrize("start", [1e306, 10 ** 400])  # seconds that are more milliseconds than a float holds
def test_deepgram_refuses_a_start_time_too_large_for_milliseconds_and_reads_the_rest(start):
    mapped = deepgram.batch([results(), results(start=start)], Options(conversation_id="c-dg"))
    assert [u.utterance_id for u in mapped.utterances] == ["r-1.ch0.1500"]
    assert [(r["index"], r["code"]) for r in mapped.refused] == [(1, "invalid_payload")]


def test_a_mapped_body_of_more_utterances_than_the_contract_allows_is_refused_whole():
    finals = [results(start=n) for n in range(MAX_UTTERANCES)]
    assert len(deepgram.batch(finals, Options(conversation_id="c-dg")).utterances) == MAX_UTTERANCES
    with pytest.raises(InvalidPayload, match=str(MAX_UTTERANCES)):
        deepgram.batch([*finals, results(start=MAX_UTTERANCES)], Options(conversation_id="c-dg"))


def test_a_stream_that_names_no_call_needs_the_conversation_id_option():
    for mapper, message in ((deepgram.batch, results()), (assemblyai.batch, {"type": "Begin"}),
                            (transcribe.batch, {"TranscriptEvent": {"Transcript": {"Results": []}}})):
        with pytest.raises(InvalidPayload, match="conversation_id"):
            mapper(message, Options())


def test_assemblyai_v2_partials_share_their_audio_start_and_the_final_closes_them():
    messages = [{"message_type": "SessionBegins", "session_id": "s-1", "expires_at": "2026-12-02T06:00:00"},
                {"message_type": "PartialTranscript", "audio_start": 1200, "audio_end": 2100, "text": "third time"},
                {"message_type": "FinalTranscript", "audio_start": 1200, "audio_end": 3900,
                 "text": "Third time I've called.", "punctuated": True, "text_formatted": True},
                {"message_type": "SessionTerminated"}]
    mapped = assemblyai.batch(messages, Options(conversation_id="c-aai", speaker="customer"))
    assert [(u.utterance_id, u.final, u.text) for u in mapped.utterances] == [
        ("rt.customer.1200.s-1", False, "third time"), ("rt.customer.1200.s-1", True, "Third time I've called.")]
    assert (mapped.ended, mapped.ignored) == ([], 2)  # a stream's end is one side's, not the call's


def test_assemblyai_v3_takes_a_turn_at_its_end_once_and_its_formatted_repeat_is_the_same_utterance_again():
    turn = {"type": "Turn", "turn_order": 3, "end_of_turn": True, "turn_is_formatted": False,
            "transcript": "get me a supervisor", "words": []}
    mapped = assemblyai.batch([turn, {**turn, "turn_is_formatted": True, "transcript": "Get me a supervisor."}],
                              Options(conversation_id="c-aai", speaker="customer"))
    assert [(u.utterance_id, u.final) for u in mapped.utterances] == [("turn.customer.3", True)] * 2
    assert [u.text for u in in_order(mapped.utterances)] == ["get me a supervisor"]  # the repeat: a duplicate


def test_assemblyai_names_each_utterance_by_the_session_option_or_a_begin_in_the_same_body():
    turn = {"type": "Turn", "turn_order": 0, "end_of_turn": True, "turn_is_formatted": False,
            "transcript": "i want a refund", "words": []}
    named = assemblyai.batch(turn, options_from({"conversation_id": "c-aai", "session": "s-2"}))
    assert named.utterances[0].utterance_id == "turn.customer.0.s-2"
    begun = assemblyai.batch([{"type": "Begin", "id": "s-3", "expires_at": 1}, turn],
                             Options(conversation_id="c-aai", session="s-2"))
    assert begun.utterances[0].utterance_id == "turn.customer.0.s-3"
    v2 = assemblyai.batch([{"message_type": "SessionBegins", "session_id": "s-4"},
                           {"message_type": "FinalTranscript", "audio_start": 0, "audio_end": 900, "text": "Hi."}],
                          Options(conversation_id="c-aai"))
    assert v2.utterances[0].utterance_id == "rt.customer.0.s-4"


def test_transcribe_maps_channel_ids_and_call_analytics_roles_and_ignores_category_events():
    result = {"ResultId": "r-7", "StartTime": 1.25, "EndTime": 2.5, "IsPartial": False, "ChannelId": "ch_1",
              "Alternatives": [{"Transcript": "Let me help."}]}
    mapped = transcribe.batch({"Transcript": {"Results": [result]}}, Options(conversation_id="c-tr"))
    assert [(u.utterance_id, u.speaker, u.start_ms, u.end_ms) for u in mapped.utterances] == [
        ("r-7", "agent", 1250.0, 2500.0)]
    utterance = {"UtteranceEvent": {"UtteranceId": "u-3", "ParticipantRole": "CUSTOMER", "IsPartial": True,
                                    "Transcript": "I'm really angry", "BeginOffsetMillis": 10}}
    analytics = transcribe.batch([utterance, {"CategoryEvent": {"MatchedCategories": ["angry"]}}],
                                 Options(conversation_id="c-tr"))
    assert [(u.speaker, u.final) for u in analytics.utterances] == [("customer", False)]
    assert analytics.ignored == 1
    bad = transcribe.batch({"Transcript": {"Results": [{**result, "ChannelId": "left"}]}},
                           Options(conversation_id="c-tr"))
    assert bad.refused[0]["code"] == "invalid_payload"


def event(kind="NEW_MESSAGE", role="END_USER", conversation="projects/p/locations/global/conversations/g-1"):
    return {"conversation": conversation, "type": kind, "newMessagePayload": {
        "name": f"{conversation}/messages/m-5", "content": "It arrived broken.", "participantRole": role}}


def test_google_reads_a_pub_sub_push_envelope_and_names_the_conversation_by_its_last_segment():
    push = {"message": {"data": base64.b64encode(json.dumps(event()).encode()).decode(), "messageId": "17"},
            "subscription": "projects/p/subscriptions/copilot"}
    mapped = google.batch(push, Options())
    assert [(u.conversation_id, u.utterance_id, u.speaker) for u in mapped.utterances] == [("g-1", "m-5", "customer")]


def test_google_ignores_a_virtual_agent_s_messages_recognition_results_and_event_types_added_later():
    mapped = google.batch([event(role="AUTOMATED_AGENT"), event(kind="NEW_RECOGNITION_RESULT"),
                           event(kind="CONVERSATION_FINISHED"), event(kind="SOMETHING_NEW")], Options())
    assert (mapped.utterances, mapped.ignored, mapped.ended, mapped.refused) == ([], 3, ["g-1"], [])
    assert google.batch(event(kind=None), Options()).refused[0]["code"] == "invalid_payload"


def test_google_names_the_message_format_setting_when_the_pub_sub_data_is_not_json():
    proto = {"message": {"data": base64.b64encode(b"\x0a\x2cprojects/p/conversations/g-1\x10\x05").decode()}}
    refused = google.batch(proto, Options()).refused
    assert refused[0]["code"] == "invalid_payload" and "message_format JSON" in refused[0]["message"]


@pytest.mark.parametrize("mapper, wrap", [(google.batch, lambda data: {"message": {"data": data}}),
                                           (contact_lens.batch, lambda data: {"Data": data})])
def test_json_nested_too_deep_inside_base64_is_one_refused_message(mapper, wrap):
    deep = base64.b64encode(b"[" * 100_000 + b"]" * 100_000).decode()
    mapped = mapper([wrap(deep), event(kind="CONVERSATION_FINISHED") if mapper is google.batch
                     else lens(kind="COMPLETED")], Options())
    assert [(r["index"], r["code"]) for r in mapped.refused] == [(0, "invalid_payload")] and len(mapped.ended) == 1


def test_every_utterance_carries_the_start_the_options_give():
    start = Start(agent="amy", queue="billing")
    mapped = google.batch(event(), Options(start=start))
    assert mapped.utterances[0].start == start
    assert google.batch(event(), Options(start=None)).utterances[0].start is None


def test_options_come_from_the_query_string():
    options = options_from({"conversation_id": "c-1", "speaker": "agent", "channels": "agent,customer",
                            "agent": "amy", "queue": "billing", "channel": "voice", "consent": "false"})
    assert options == Options("c-1", "agent", ("agent", "customer"),
                              Start(agent="amy", queue="billing", channel="voice", consent=False))
    assert options_from({}) == Options() and options_from({"start": "false"}).start is None
    assert options_from({"session": "de5d9927-73a6-4be8-b52d-b4c07be37e6b"}).session == \
        "de5d9927-73a6-4be8-b52d-b4c07be37e6b"


@pytest.mark.parametrize("args", [{"speaker": "bot"}, {"channels": "customer,robot"}, {"channels": "customer,,agent"},
                                  {"conversation_id": "has space"}, {"start": "sometimes"},
                                  {"start": "false", "agent": "amy"}, {"channel": "fax"}, {"agent": "a b"},
                                  {"converstion_id": "c-1"}, {"session": "not an id"}])
def test_a_bad_or_unknown_option_is_invalid_payload(args):
    with pytest.raises(InvalidPayload):
        options_from(args)


# Twilio's worked example (https://www.twilio.com/docs/usage/security#validating-requests), and the port cases of
# twilio-python's RequestValidator tests.
TWILIO_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
TWILIO_PARAMS = {"CallSid": "CA1234567890ABCDE", "Caller": "+12349013030", "Digits": "1234", "From": "+12349013030",
                 "To": "+18005551212"}
TWILIO_SIGNATURE = "0/KCTR6DLpKmkAf8muzZqo1nDgQ="


def test_the_twilio_signature_matches_the_example_on_twilio_s_security_page():
    assert twilio.signature(TWILIO_URL, TWILIO_PARAMS, "12345") == TWILIO_SIGNATURE
    assert twilio.valid_signature(TWILIO_URL, TWILIO_PARAMS, "12345", TWILIO_SIGNATURE)
    assert twilio.valid_signature(TWILIO_URL, list(reversed(TWILIO_PARAMS.items())), "12345", TWILIO_SIGNATURE)


def test_a_repeated_parameter_is_signed_with_its_values_sorted():
    pairs = [("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"), ("Digits", "1234")]
    assert twilio.signature(TWILIO_URL, pairs, "12345") == "IK+Dwps556ElfBT0I3Rgjkr1wJU="


def test_a_signature_over_the_url_with_or_without_its_port_is_valid():
    params = {**TWILIO_PARAMS, "Caller": "+14158675309", "From": "+14158675309"}
    assert twilio.valid_signature(TWILIO_URL.replace(".com", ".com:1234"), params, "12345",
                                  "RSOYDt4T1cUTdK1PDd93/VVr8B8=")
    assert twilio.valid_signature(TWILIO_URL, params, "12345", "kvajT1Ptam85bY51eRf/AJRuM3w=")  # with :443
    assert twilio.valid_signature(TWILIO_URL.replace("https", "http"), params, "12345", "0ZXoZLH/DfblKGATFgpif+LLRf4=")


@pytest.mark.parametrize(("url", "params", "token", "given"), [
    (TWILIO_URL, TWILIO_PARAMS, "12345", None),
    (TWILIO_URL, TWILIO_PARAMS, "12345", ""),
    (TWILIO_URL, TWILIO_PARAMS, "54321", TWILIO_SIGNATURE),
    (TWILIO_URL, {**TWILIO_PARAMS, "Digits": "9999"}, "12345", TWILIO_SIGNATURE),
    (TWILIO_URL.replace("foo=1", "foo=2"), TWILIO_PARAMS, "12345", TWILIO_SIGNATURE),
    (TWILIO_URL, TWILIO_PARAMS, "12345", TWILIO_SIGNATURE[:-1]),
    (TWILIO_URL, TWILIO_PARAMS, "", TWILIO_SIGNATURE),
])
def test_a_missing_or_wrong_twilio_signature_is_not_valid(url, params, token, given):
    assert not twilio.valid_signature(url, params, token, given)


@pytest.mark.parametrize("listed", ["acme", "acme=", "=tok", "acme=tok,globex=@"])
def test_the_twilio_auth_tokens_setting_must_be_tenant_token_pairs(listed):
    with pytest.raises(InvalidSetting, match="COPILOT_TWILIO_AUTH_TOKENS"):
        Settings(twilio_auth_tokens=listed).validate()
    Settings(twilio_auth_tokens="acme=tok, globex=@/run/secrets/globex").validate()


@pytest.mark.parametrize("name", NAMES)
def test_each_utterance_knows_which_message_of_the_body_it_came_from(name):
    doc = fixture(name)
    query = doc["requests"][-1]["query"]
    messages = [r.get("body", r.get("form")) for r in doc["requests"] if r["query"] == query]
    whole = SOURCES[doc["source"]](messages, options_from(query))
    assert len(whole.positions) == len(whole.utterances)
    for n, u in enumerate(whole.utterances):
        alone = SOURCES[doc["source"]](messages[whole.position(n)], options_from(query))
        assert u.utterance_id in {a.utterance_id for a in alone.utterances}
