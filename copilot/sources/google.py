"""Google Agent Assist / Dialogflow conversation events (pure): the `ConversationEvent`s a conversation profile
publishes to Pub/Sub (Dialogflow API reference, "ConversationEvent"; Agent Assist "Pub/Sub notifications"), bare
or in the Pub/Sub push envelope `{"message": {"data": base64}}`.

NEW_MESSAGE is a final utterance: its `participantRole` END_USER is the customer, HUMAN_AGENT the agent,
AUTOMATED_AGENT (a virtual agent) ignored; its id is the message's own. NEW_RECOGNITION_RESULT (a partial or final
speech result) names neither its participant nor an id that ties it to the message it becomes, and the final
words arrive as NEW_MESSAGE: it is ignored. CONVERSATION_FINISHED ends the conversation; the conversation id is
the last segment of `conversation` (projects/<p>/locations/<l>/conversations/<id>). Other event types, and any
added later, are ignored. The profile's notification config must set `message_format: JSON`: its default
(MESSAGE_FORMAT_UNSPECIFIED) publishes serialized protos, which are refused.
"""
from __future__ import annotations

from typing import Any

from copilot.errors import InvalidPayload
from copilot.sources.contract import Batch
from copilot.sources.messages import (
    IGNORED,
    Options,
    Read,
    base64_json,
    conversation,
    read_messages,
    role_speaker,
    utterance,
)

ROLES = {"END_USER": "customer", "HUMAN_AGENT": "agent", "AUTOMATED_AGENT": None, "ROLE_UNSPECIFIED": None}
TYPES = ("CONVERSATION_STARTED", "CONVERSATION_FINISHED", "HUMAN_INTERVENTION_NEEDED", "NEW_MESSAGE",
         "NEW_RECOGNITION_RESULT", "UNRECOVERABLE_ERROR", "TYPE_UNSPECIFIED")


def batch(payload: Any, options: Options) -> Batch:
    """The utterances of one ConversationEvent (or Pub/Sub push) or a list of them."""
    return read_messages(payload, options, read)


def read(event: dict, options: Options) -> Read:
    """One event."""
    if "message" in event:  # the Pub/Sub push envelope
        try:
            event = base64_json(event["message"].get("data"))
        except InvalidPayload:
            raise InvalidPayload("the Pub/Sub message data is not base64 of a JSON ConversationEvent: set the "
                                 "conversation profile's notification config to message_format JSON (the default "
                                 "sends protos)") from None
        if not isinstance(event, dict):
            raise InvalidPayload("a Pub/Sub message must hold one ConversationEvent")
    kind = event.get("type")
    if not isinstance(kind, str):
        raise InvalidPayload(f"an event names its type ({', '.join(TYPES)})")
    if kind == "CONVERSATION_FINISHED":
        return Read(ended=[conversation_of(event)])
    if kind != "NEW_MESSAGE":
        return IGNORED
    message = event["newMessagePayload"]
    speaker = role_speaker(ROLES, message.get("participantRole"))
    if speaker is None:
        return IGNORED
    return Read(utterances=[utterance(options, conversation_of(event), (last_segment(message.get("name")),),
                                      speaker, message.get("content"), True)])


def conversation_of(event: dict) -> str:
    """The conversation id: the last segment of the event's conversation name."""
    return conversation(last_segment(event.get("conversation")))


def last_segment(name: Any) -> str:
    """The id at the end of a resource name such as projects/p/conversations/c-1/messages/m-1."""
    if not isinstance(name, str) or not name.strip("/"):
        raise InvalidPayload("the event must carry resource names (conversation, newMessagePayload.name)")
    return name.rstrip("/").rsplit("/", 1)[-1]
