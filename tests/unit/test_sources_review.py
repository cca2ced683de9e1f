"""A reviewer's checks of the transcript mappers against the vendors' documented message shapes
(/work/notes/review17.md names the page or the vendor's own code behind each). Each test is a documented message
sequence that the mapper maps wrongly today: they fail until the mapper is fixed."""
import base64
import json

from copilot import conversation as engine
from copilot.conversation import Conversation
from copilot.sources import assemblyai, contact_lens
from copilot.sources.contract import in_order
from copilot.sources.registry import Options

CONTACT = "a1b2c3d4-5678-90ab-cdef-EXAMPLE22222"


def segments(*items):
    """One SEGMENTS event as the Contact Lens voice sample shows it."""
    return {"Version": "1.0.0", "Channel": "VOICE", "AccountId": "123456789012", "ContactId": CONTACT,
            "InstanceId": "a1b2c3d4-5678-90ab-cdef-EXAMPLE11111", "LanguageCode": "en-US", "EventType": "SEGMENTS",
            "Segments": list(items)}


def piece(piece_id, words, begin, end):
    """An Utterance segment: only its own words (PartialContent), tied to its turn by TranscriptId."""
    return {"Utterance": {"Id": piece_id, "TranscriptId": "121d1581-905f-4169-9804-b841bb4df04a",
                          "ParticipantId": "AGENT", "ParticipantRole": "AGENT", "PartialContent": words,
                          "BeginOffsetMillis": begin, "EndOffsetMillis": end}}


def test_contact_lens_an_interim_turn_keeps_the_words_of_its_pieces_from_an_earlier_body():
    # The voice sample's two pieces of one turn, here in two events: each is its own GetRecords batch (the
    # consumer posts one batch per request) or its own webhook POST. The turn so far is both pieces. A mapper is
    # pure and sees one body: it marks each a piece, and the conversation's state (which every worker shares)
    # joins them, as the service does for each piece it takes.
    first = contact_lens.batch(segments(piece("7b48ca3d", "Hello, thank you for calling Example Corp.", 19010,
                                              22980)), Options())
    second = contact_lens.batch(segments(piece("75acb743", "How can I help you?", 23000, 24598)), Options())
    assert in_order(first.utterances)[0].text == "Hello, thank you for calling Example Corp."
    shown = in_order(second.utterances)[0]
    assert (shown.utterance_id, shown.final, shown.piece) == ("121d1581-905f-4169-9804-b841bb4df04a", False, True)
    call = Conversation(id=CONTACT, tenant="acme", agent="", channel="voice")
    so_far = [engine.take_piece(call, u.utterance_id, u.text, 4000) for u in (*first.utterances, shown)]
    assert so_far[-1] == "Hello, thank you for calling Example Corp. How can I help you?"


def test_contact_lens_reads_a_lambda_kinesis_event_whose_records_carry_the_segments():
    # AWS Lambda's Kinesis event, posted as it came by a relay function: {"Records": [{"kinesis": {"data": ...}}]}.
    event = segments({"Transcript": {"Id": "121d1581", "ParticipantId": "CUSTOMER", "ParticipantRole": "CUSTOMER",
                                     "Content": "I want to speak to a manager.", "BeginOffsetMillis": 25000,
                                     "EndOffsetMillis": 27000, "Sentiment": "NEGATIVE"}})
    record = {"kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": CONTACT, "sequenceNumber": "4959",
                          "data": base64.b64encode(json.dumps(event).encode()).decode(),
                          "approximateArrivalTimestamp": 1796190000.1},
              "eventSource": "aws:kinesis", "eventName": "aws:kinesis:record"}
    mapped = contact_lens.batch({"Records": [record]}, Options())
    assert mapped.refused == []
    assert [(u.speaker, u.text, u.final) for u in mapped.utterances] == [
        ("customer", "I want to speak to a manager.", True)]


def test_assemblyai_universal_3_pro_takes_its_end_of_turn_which_comes_formatted():
    # Universal-3 Pro Streaming: "turn_is_formatted is true on end-of-turn transcripts. There is no separate
    # formatting step." The only final of the turn is end_of_turn and turn_is_formatted together.
    partial = {"type": "Turn", "turn_order": 0, "turn_is_formatted": False, "end_of_turn": False,
               "transcript": "my name is", "end_of_turn_confidence": 0.2, "utterance": "",
               "words": [{"start": 1920, "end": 2000, "text": "my", "confidence": 0.9, "word_is_final": True}]}
    final = {**partial, "turn_is_formatted": True, "end_of_turn": True, "transcript": "My name is Sonny.",
             "utterance": "My name is Sonny.", "end_of_turn_confidence": 1}
    mapped = assemblyai.batch([partial, final], Options(conversation_id="c-u3", speaker="customer"))
    assert [(u.text, u.final) for u in in_order(mapped.utterances)] == [("My name is Sonny.", True)]


def test_assemblyai_a_new_session_s_first_turn_is_not_named_as_the_last_session_s_first_turn():
    # turn_order counts from 0 in each session (the message sequence starts every session with Begin and
    # turn_order 0): a relay that reconnects mid-call must not have its new turns taken as repeats of old ones.
    def session(session_id, words):
        return [{"type": "Begin", "id": session_id, "expires_at": 1759796682},
                {"type": "Turn", "turn_order": 0, "turn_is_formatted": False, "end_of_turn": True,
                 "transcript": words, "words": []}]

    options = Options(conversation_id="c-reconnect", speaker="customer")
    before = assemblyai.batch(session("de5d9927-73a6-4be8-b52d-b4c07be37e6b", "this is the third time"), options)
    after = assemblyai.batch(session("0c1d2e3f-4a5b-4e5f-8a9b-3c1f7a9ec3d4", "i want a refund today"), options)
    assert before.utterances[0].utterance_id != after.utterances[0].utterance_id
