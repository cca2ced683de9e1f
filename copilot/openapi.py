"""The OpenAPI 3 document of the REST API, served at /api/v1/openapi.json."""
from __future__ import annotations

from copilot.cues.taxonomy import CUES
from copilot.floor import RULE_KINDS, THRESHOLDS
from copilot.library.phrasing import CHANNELS, ID_PATTERN, STAGES, STATUSES


def ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def reply(description: str, schema: dict | None = None, content_type: str = "application/json") -> dict:
    body = {"description": description}
    if schema is not None:
        body["content"] = {content_type: {"schema": schema}}
    return body


ERRORS = {
    "400": reply("Malformed request", ref("Error")), "401": reply("Missing, forged or expired token", ref("Error")),
    "403": reply("The token's role may not do this", ref("Error")), "404": reply("Not found", ref("Error")),
    "409": reply("Conflicts with the tenant's limits or a running experiment", ref("Error")),
    "413": reply("Body too large", ref("Error")), "422": reply("Validation failed", ref("Error")),
    "503": reply("The analytics store cannot be reached from this worker", ref("Error")),
}


def op(summary: str, ok: dict, *, body: dict | None = None, params: list | None = None, errors=("400", "401"),
       status: str = "200", auth: bool = True, body_type: str = "application/json") -> dict:
    operation = {"summary": summary, "responses": {status: ok, **{e: ERRORS[e] for e in errors}}}
    if body is not None:
        operation["requestBody"] = {"required": True, "content": {body_type: {"schema": body}}}
    if params:
        operation["parameters"] = params
    if not auth:
        operation["security"] = []
    return operation


def query(name: str, schema: dict, description: str = "") -> dict:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


PATH_ID = {"name": "phrasing_id", "in": "path", "required": True, "schema": {"type": "string"}}
FORMAT = query("format", {"type": "string", "enum": ["yaml", "csv"]}, "file format")
PHRASING_REPLY = {"type": "object", "properties": {"ok": {"type": "boolean"}, "phrasing": ref("Phrasing"),
                                                   "near_duplicates": {"type": "array", "items": ref("NearDuplicate")}}}


DAY = {"type": "string", "format": "date"}
RANGE = [query("from", DAY, "first day (UTC), inclusive"), query("to", DAY, "last day (UTC), inclusive"),
         query("queue", {"type": "string", "maxLength": 128}, "one queue only")]
CSV_FORMAT = query("format", {"type": "string", "enum": ["json", "csv"]}, "json (default) or csv")
ROWS = {"type": "object", "properties": {"ok": {"type": "boolean"}, "rows": {"type": "array", "items": {"type": "object"}}}}


def analytics_paths() -> dict:
    """Outcomes in, reports and scorecards out, erasure and export (copilot/analytics/api.py)."""
    from copilot.analytics.api import EXPORT_TABLES, METRICS, REPORTS, SCORECARD_BY, SPLITS

    outcome = {"type": "object", "required": ["conversation_id"], "properties": {
        "conversation_id": {"type": "string"}, "csat": {"type": "integer", "minimum": 1, "maximum": 5},
        "nps": {"type": "integer", "minimum": 0, "maximum": 10},
        **{item: {"type": "integer", "minimum": 1, "maximum": 7}
           for item in ("felt_understood", "acknowledged_situation", "clear_next_steps")},
        "survey_scale": {"type": "integer", "enum": [5, 7]}, "resolved": {"type": "boolean"},
        "repeat_contact": {"type": "boolean"}, "repeat_within_days": {"type": "integer", "minimum": 1, "maximum": 365},
        "responded_at": {"oneOf": [{"type": "string", "format": "date-time"}, {"type": "number"}]}}}
    accepted = {"type": "object", "properties": {
        "ok": {"type": "boolean"}, "accepted": {"type": "integer"},
        "unknown_conversations": {"type": "object", "properties": {"count": {"type": "integer"}, "ids": {
            "type": "array", "items": {"type": "string"}}}},
        "rejected": {"type": "integer"}, "errors": {"type": "array", "items": {"type": "object"},
                                                    "description": "the first 1,000 rows refused"}}}
    outcomes_op = op("Outcomes by conversation id (integration, lead, admin): JSON, CSV, or a multipart 'file'; "
                     "bad rows are reported and the rest land", reply("Accepted", accepted),
                     errors=("400", "401", "403", "413", "503"))
    outcomes_op["requestBody"] = {"required": True, "content": {
        "application/json": {"schema": {"type": "object", "required": ["outcomes"], "properties": {
            "outcomes": {"type": "array", "items": outcome}}}},
        "text/csv": {"schema": {"type": "string"}},
        "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {
            "file": {"type": "string", "format": "binary"}}}}}}
    return {
        "/api/v1/outcomes": {"post": outcomes_op},
        "/api/v1/reports/{report}": {
            "parameters": [{"name": "report", "in": "path", "required": True,
                            "schema": {"type": "string", "enum": list(REPORTS)}}],
            "get": op("A report's cells with n and 95% intervals, 'too few' below the minimum n (lead)",
                      reply("Report", ROWS), params=[
                          *RANGE, CSV_FORMAT,
                          query("by", {"type": "string", "enum": ["day", "queue", "agent", "cue", "all"]},
                                "resolution: day (default), queue, agent, cue; cqs: queue (default), day, agent, "
                                "all; repeat_contacts: day (default), queue, agent, all"),
                          query("metric", {"type": "string", "enum": list(METRICS)}, "outcomes, phrasings: the outcome"),
                          query("split", {"type": "string", "enum": list(SPLITS)}, "outcomes: the groups"),
                          query("cue", {"type": "string", "enum": list(CUES)},
                                "outcomes, split=acknowledged: that cue's episodes only"),
                          query("experiment", {"type": "string", "maxLength": 128}, "outcomes: split=variant of it"),
                          query("within_days", {"type": "integer", "minimum": 1, "maximum": 365},
                                "repeat_contacts: the window (default 7)")],
                      errors=("400", "401", "403", "404", "503"))},
        "/api/v1/scorecards": {"get": op(
            "Empathy scorecards by agent, queue or day, or one row per conversation (lead)", reply("Scorecards", ROWS),
            params=[*RANGE, CSV_FORMAT, query("by", {"type": "string", "enum": list(SCORECARD_BY)})],
            errors=("400", "401", "403", "503"))},
        "/api/v1/scorecards/{conversation_id}": {
            "parameters": [{"name": "conversation_id", "in": "path", "required": True, "schema": {"type": "string"}}],
            "get": op("One conversation's scorecard: each item, its turn and evidence (lead)",
                      reply("Scorecard", {"type": "object"}), params=[CSV_FORMAT],
                      errors=("400", "401", "403", "404", "503"))},
        "/api/v1/erasure": {"post": op(
            "Erase a conversation or a customer_ref everywhere, audited (admin)", reply("Erased", {"type": "object"}),
            body={"type": "object", "minProperties": 1, "maxProperties": 1, "properties": {
                "conversation_id": {"type": "string"}, "customer_ref": {"type": "string"}}},
            errors=("400", "401", "403", "503"))},
        "/api/v1/erasures": {"get": op("The erasure audit (admin)", reply("Erasures", {"type": "object"}),
                                       errors=("401", "403", "503"))},
        "/api/v1/export": {"get": op(
            "One table for a range of days as Parquet (admin)",
            reply("Parquet file", {"type": "string", "format": "binary"}, "application/vnd.apache.parquet"),
            params=[{**query("table", {"type": "string", "enum": list(EXPORT_TABLES)}), "required": True},
                    {**query("from", DAY), "required": True}, {**query("to", DAY), "required": True}],
            errors=("400", "401", "403", "503"))},
    }


def sources_paths() -> dict:
    """Transcript sources in: the generic batch and each source's own payload (copilot/sources/api.py)."""
    from copilot.conversation import CHANNELS as CONVERSATION_CHANNELS
    from copilot.conversation import SPEAKERS
    from copilot.sources.contract import MAX_UTTERANCES

    name = {"type": "string", "maxLength": 128}
    start = {"oneOf": [{"type": "boolean"}, {"type": "object", "additionalProperties": False, "properties": {
        "agent": {"type": "string", "maxLength": 64, "description": "empty: unclaimed, the first agent to start "
                                                                    "or join it claims it"},
        "channel": {"type": "string", "enum": list(CONVERSATION_CHANNELS)}, "queue": name, "customer_ref": name,
        "locale": name, "consent": {"type": "boolean"}}}],
        "description": "start the conversation on its first utterance when it is not running (true: the defaults)"}
    offset = {"type": "number", "minimum": 0, "description": "milliseconds from the start of the call"}
    utterance = {"type": "object", "additionalProperties": False,
                 "required": ["conversation_id", "utterance_id", "speaker", "text", "final"], "properties": {
                     "conversation_id": {"type": "string"}, "utterance_id": {
                         "type": "string", "description": "the same for an utterance's interim results and its final one"},
                     "speaker": {"type": "string", "enum": list(SPEAKERS)}, "text": {"type": "string"},
                     "final": {"type": "boolean"}, "start_ms": offset, "end_ms": offset, "start": start}}
    batch = {"oneOf": [
        {"type": "object", "additionalProperties": False, "properties": {
            "start": start, "utterances": {"type": "array", "maxItems": MAX_UTTERANCES, "items": utterance},
            "end": {"type": "array", "maxItems": MAX_UTTERANCES, "items": {"type": "string"},
                    "description": "conversations that have ended"}}},
        {"type": "array", "maxItems": MAX_UTTERANCES, "items": utterance}]}
    answer = {"type": "object", "properties": {
        "ok": {"type": "boolean", "description": "false when any utterance or end has an error"},
        "accepted": {"type": "integer"}, "duplicates": {"type": "integer"},
        "started": {"type": "array", "items": {"type": "string"}}, "ended": {"type": "array", "items": {"type": "string"}},
        "ignored": {"type": "integer"}, "errors": {"type": "array", "items": {"type": "object", "properties": {
            "index": {"type": "integer", "description": "the utterance's position in the body"},
            "end": {"type": "integer", "description": "for an end: its position in `end`"},
            "utterance_id": {"type": "string"}, "conversation_id": {"type": "string"},
            "code": {"type": "string"}, "message": {"type": "string"}}}}}}
    return {
        "/api/v1/transcripts": {"post": op(
            "A batch of utterances from a transcript source (integration, lead, admin): interim results replace "
            "each other, repeats are harmless, bad utterances are listed by index and the rest land",
            reply("Applied", answer), body=batch, errors=("400", "401", "403", "413"))},
        **source_paths(answer),
    }


def source_paths(answer: dict) -> dict:
    """Each source's own payload, mapped by copilot.sources.registry, and Twilio's signed callback."""
    from copilot.conversation import CHANNELS as CONVERSATION_CHANNELS
    from copilot.conversation import SPEAKERS
    from copilot.sources.registry import SOURCES

    words = {"type": "string", "maxLength": 128}
    options = [
        query("conversation_id", {"type": "string", "maxLength": 128},
              "the conversation, for a source whose messages name no call (Deepgram, AssemblyAI, Transcribe)"),
        query("speaker", {"type": "string", "enum": list(SPEAKERS)}, "the speaker of every message (one stream "
                                                                      "per side)"),
        query("channels", {"type": "string"}, "the speaker of each channel or track, in order (default "
                                              "customer,agent)"),
        query("session", {"type": "string", "maxLength": 128}, "the session of a stream whose utterance numbers "
                                                               "restart each session (AssemblyAI: its Begin id)"),
        query("start", {"type": "boolean"}, "false: never start a conversation (default true: start it on its "
                                            "first utterance)"),
        query("agent", {"type": "string", "maxLength": 64}, "the agent of a conversation it starts (default "
                                                            "unclaimed: the first agent to join claims it)"),
        query("channel", {"type": "string", "enum": list(CONVERSATION_CHANNELS)}), query("queue", words),
        query("customer_ref", words), query("locale", words), query("consent", {"type": "boolean"})]
    mapped = op("One transcript source's own messages, one or a list (integration, lead, admin): mapped to "
                "utterances and applied as /api/v1/transcripts is; a message that cannot be read is listed by its "
                "index and the rest land", reply("Applied", answer),
                body={"oneOf": [{"type": "object"}, {"type": "array", "items": {"type": "object"}}]},
                params=[{"name": "source", "in": "path", "required": True,
                         "schema": {"type": "string", "enum": [s for s in SOURCES if s != "twilio"]}}, *options],
                errors=("400", "401", "403", "404", "413"))
    callback = {"type": "object", "properties": {name: {"type": "string"} for name in (
        "AccountSid", "CallSid", "TranscriptionSid", "TranscriptionEvent", "TranscriptionData", "Track", "Final",
        "SequenceId", "Timestamp", "LanguageCode")}}
    twilio = op("Twilio Real-Time Transcription's statusCallbackUrl: no bearer token, the request must carry "
                "X-Twilio-Signature under the tenant's auth token (COPILOT_TWILIO_AUTH_TOKENS), else 403 "
                "invalid_signature and nothing lands", reply("Applied", answer), body=callback,
                body_type="application/x-www-form-urlencoded", auth=False, errors=("400", "403", "413"),
                params=[{**query("tenant", {"type": "string", "maxLength": 40}, "the tenant the call belongs to"),
                         "required": True},
                        {"name": "X-Twilio-Signature", "in": "header", "required": True, "schema": {"type": "string"}},
                        *[o for o in options if o["name"] != "conversation_id"]])
    return {"/api/v1/sources/{source}": {"post": mapped}, "/api/v1/sources/twilio": {"post": twilio}}


def document() -> dict:
    """The whole OpenAPI 3.0 document."""
    string_list = {"type": "array", "items": {"type": "string"}}
    return {
        "openapi": "3.0.3",
        "info": {"title": "Empathy Copilot REST API", "version": "1.0.0",
                 "description": "Cue analysis, the team leads' suggestion library and live floor, and analytics "
                                "(outcomes in; reports, scorecards, erasure and Parquet export out). Authenticate with "
                                "`Authorization: Bearer <token>` from `python -m copilot token`."},
        "security": [{"bearer": []}],
        "paths": {
            "/healthz": {"get": op("Process is up", reply("Up", ref("Ok")), errors=(), auth=False)},
            "/readyz": {"get": op("Model and store ready", reply("Ready", ref("Ok")), errors=(), auth=False)},
            "/metrics": {"get": op("Prometheus metrics", reply("Metrics", {"type": "string"}, "text/plain"), errors=(),
                                   auth=False)},
            "/api/v1/openapi.json": {"get": op("This document", reply("OpenAPI document", {"type": "object"}),
                                               errors=(), auth=False)},
            "/api/v1/cues": {"post": op(
                "Cues, spans and emotions of one text", reply("Analysis", ref("Analysis")),
                body={"type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}},
                errors=("400", "401", "413"))},
            "/api/v1/phrasings": {
                "get": op("List or search phrasings", reply("Phrasings", ref("PhrasingList")), params=[
                    query("q", {"type": "string", "maxLength": 500}, "search by meaning"),
                    query("status", {"type": "string", "enum": list(STATUSES)}),
                    query("cue", {"type": "string", "enum": list(CUES)}),
                    query("stage", {"type": "string", "enum": list(STAGES)}),
                    query("channel", {"type": "string", "enum": list(CHANNELS)})]),
                "post": op("Create a phrasing (always as a draft)", reply("Created", PHRASING_REPLY),
                           body=ref("PhrasingInput"), status="201", errors=("400", "401", "403", "409", "422"))},
            "/api/v1/phrasings/{phrasing_id}": {
                "parameters": [PATH_ID],
                "get": op("One phrasing", reply("Phrasing", PHRASING_REPLY), errors=("401", "404")),
                "put": op("Edit: saves a new version", reply("Edited", PHRASING_REPLY), body=ref("PhrasingEdit"),
                          errors=("400", "401", "403", "404", "422")),
                "patch": op("Edit: saves a new version", reply("Edited", PHRASING_REPLY), body=ref("PhrasingEdit"),
                            errors=("400", "401", "403", "404", "422"))},
            **{f"/api/v1/phrasings/{{phrasing_id}}/{action}": {
                "parameters": [PATH_ID],
                "post": op(f"{action.capitalize()} a phrasing", reply("Changed", PHRASING_REPLY),
                           errors=("401", "403", "404"))} for action in ("approve", "retire", "restore")},
            "/api/v1/phrasings/bulk": {"post": op(
                "Approve, retire or restore many phrasings, all or nothing", reply("Changed", {"type": "object"}),
                body={"type": "object", "required": ["action", "ids"], "properties": {
                    "action": {"type": "string", "enum": ["approve", "retire", "restore"]},
                    "ids": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 20000}}},
                errors=("400", "401", "403", "404"))},
            "/api/v1/phrasings/{phrasing_id}/versions": {
                "parameters": [PATH_ID],
                "get": op("Every version of a phrasing", reply("Versions", {"type": "object"}), errors=("401", "404"))},
            "/api/v1/validate": {"post": op("Check a phrasing without saving", reply("Valid", PHRASING_REPLY),
                                            body=ref("PhrasingInput"), errors=("400", "401", "403", "422"))},
            "/api/v1/phrasings/import": {"post": op(
                "Bulk import, all or nothing", reply("Imported", ref("ImportReport")), params=[FORMAT],
                body={"type": "string"}, body_type="application/yaml",
                errors=("400", "401", "403", "409", "413", "422"))},
            "/api/v1/phrasings/export": {"get": op(
                "Export the library", reply("File", {"type": "string"}, "application/yaml"),
                params=[FORMAT, query("status", {"type": "string", "enum": list(STATUSES)})])},
            "/api/v1/audit": {"get": op("Append-only audit log", reply("Entries", {"type": "object"}), params=[
                query("after", {"type": "integer", "minimum": 0}), query("limit", {"type": "integer", "minimum": 1}),
                query("phrasing_id", {"type": "string", "pattern": f"^{ID_PATTERN.pattern}$"},
                      "only this phrasing's entries")],
                errors=("400", "401", "403"))},
            "/api/v1/analytics/usage": {"get": op("Usage counts", reply("Rows", {"type": "object"}), params=[
                query("by", {"type": "string"}, "comma list of phrasing_id, cue, queue, channel"),
                query("format", {"type": "string", "enum": ["json", "csv"]})], errors=("400", "401", "403"))},
            "/api/v1/analytics/conversations": {"get": op(
                "Cue mentions and emotional resolution per day", reply("Trends", {"type": "object"}),
                errors=("401", "403"))},
            **analytics_paths(),
            **sources_paths(),
            "/api/v1/experiments": {
                "get": op("List experiments", reply("Experiments", {"type": "object"})),
                "post": op("Define an experiment", reply("Defined", {"type": "object"}), body=ref("Experiment"),
                           status="201", errors=("400", "401", "403", "409", "413"))},
            "/api/v1/experiments/{experiment_id}/report": {
                "parameters": [{"name": "experiment_id", "in": "path", "required": True, "schema": {"type": "string"}}],
                "get": op("Per-variant rates with 95% intervals", reply("Report", {"type": "object"}),
                          errors=("401", "403", "404"))},
            "/api/v1/floor": {"get": op(
                "The live floor: every live conversation of the tenant by risk, and their alerts (lead)",
                reply("Board", ref("FloorSnapshot")), params=[query("queue", {"type": "string", "maxLength": 128},
                                                                    "one queue only")],
                errors=("400", "401", "403"))},
            "/api/v1/floor/rules": {
                "get": op("The tenant's floor alert rules (lead)", reply("Rules", ref("FloorRulesReply")),
                          errors=("401", "403")),
                "put": op("Change some of the tenant's floor alert rules (lead)", reply("Rules", ref("FloorRulesReply")),
                          body={"type": "object", "required": ["rules"], "properties": {"rules": ref("FloorRules")}},
                          errors=("400", "401", "403"))},
            "/api/v1/tenants": {
                "get": op("List tenants (admin)", reply("Tenants", {"type": "object"}), errors=("401", "403")),
                "post": op("Create a tenant from the shipped library (admin)", reply("Created", {"type": "object"}),
                           body={"type": "object", "required": ["tenant"], "properties": {"tenant": {"type": "string"}}},
                           status="201", errors=("400", "401", "403"))},
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Ok": {"type": "object", "properties": {"ok": {"type": "boolean"}}},
                "Error": {"type": "object", "required": ["ok", "error"], "properties": {
                    "ok": {"type": "boolean"}, "error": {"type": "object", "required": ["code", "message"], "properties": {
                        "code": {"type": "string"}, "message": {"type": "string"},
                        "details": {"type": "array", "items": {"type": "object"}}}}}},
                "Cue": {"type": "object", "properties": {"cue": {"type": "string", "enum": list(CUES)},
                                                         "score": {"type": "number"},
                                                         "spans": {"type": "array", "items": {
                                                             "type": "array", "items": {"type": "integer"}}}}},
                "Analysis": {"type": "object", "properties": {
                    "ok": {"type": "boolean"}, "cues": {"type": "array", "items": ref("Cue")},
                    "emotions": {"type": "object", "additionalProperties": {"type": "number"}}}},
                "Phrasing": {"type": "object", "required": ["id", "text", "cues", "stage"], "properties": {
                    "id": {"type": "string"}, "text": {"type": "string"},
                    "cues": {"type": "array", "items": {"type": "string", "enum": list(CUES)}},
                    "stage": {"type": "string", "enum": list(STAGES)},
                    "channels": {"type": "array", "items": {"type": "string", "enum": list(CHANNELS)}},
                    "use_when": string_list, "status": {"type": "string", "enum": list(STATUSES)},
                    "locale": {"type": "string"}, "notes": {"type": "string"}, "version": {"type": "integer"}}},
                "PhrasingInput": {"type": "object", "required": ["id", "text", "cues", "stage", "use_when"],
                                  "properties": {"id": {"type": "string"}, "text": {"type": "string"},
                                                 "cues": string_list, "stage": {"type": "string"},
                                                 "channels": string_list, "use_when": string_list,
                                                 "locale": {"type": "string"}, "notes": {"type": "string"}}},
                "PhrasingEdit": {"type": "object", "properties": {"text": {"type": "string"}, "cues": string_list,
                                                                  "stage": {"type": "string"}, "channels": string_list,
                                                                  "use_when": string_list, "notes": {"type": "string"}}},
                "PhrasingList": {"type": "object", "properties": {"ok": {"type": "boolean"}, "count": {"type": "integer"},
                                                                  "phrasings": {"type": "array", "items": ref("Phrasing")}}},
                "NearDuplicate": {"type": "object", "properties": {"id": {"type": "string"}, "text": {"type": "string"},
                                                                   "similarity": {"type": "number"}}},
                "ImportReport": {"type": "object", "properties": {
                    "ok": {"type": "boolean"}, "imported": {"type": "integer"}, "created": {"type": "integer"},
                    "updated": {"type": "integer"}, "rejected": {"type": "array", "items": {"type": "object"}}}},
                "FloorRules": {"type": "object", "additionalProperties": False, "properties": {
                    kind: {"type": "object", "additionalProperties": False, "properties": {
                        "enabled": {"type": "boolean"},
                        **({"threshold": {"type": "integer", "minimum": THRESHOLDS[kind][0],
                                          "maximum": THRESHOLDS[kind][1]}} if kind in THRESHOLDS else {})}}
                    for kind in RULE_KINDS}},
                "FloorRulesReply": {"type": "object", "properties": {"ok": {"type": "boolean"},
                                                                     "rules": ref("FloorRules")}},
                "FloorRow": {"type": "object", "properties": {
                    "conversation_id": {"type": "string"}, "agent": {"type": "string"}, "queue": {"type": "string"},
                    "channel": {"type": "string"}, "started_at": {"type": "number"}, "updated_at": {"type": "number"},
                    "triage_level": {"type": "integer", "minimum": 1, "maximum": 3},
                    "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
                    "tone": {"type": "object"}, "mode": {"type": "string"}, "abuse": {"type": "boolean"},
                    "escalation": {"type": "boolean"}, "unacknowledged": {"type": "array", "items": {"type": "object"}},
                    "behaviours": {"type": "object", "additionalProperties": {"type": "integer"}},
                    "last_alert": {"type": "object", "nullable": True}, "hand": {"type": "object", "nullable": True},
                    "consent": {"type": "boolean"}, "customer_turns": {"type": "integer"},
                    "agent_turns": {"type": "integer"}, "risk": {"type": "array", "items": {"type": "number"}}}},
                "FloorAlert": {"type": "object", "properties": {
                    "id": {"type": "string"}, "conversation_id": {"type": "string"}, "agent": {"type": "string"},
                    "queue": {"type": "string"}, "rule": {"type": "string", "enum": list(RULE_KINDS)},
                    "reason": {"type": "string"}, "history": {"type": "string"},
                    "evidence": {"type": "array", "items": {"type": "object"}}, "at": {"type": "number"},
                    "taken_by": {"type": "object", "nullable": True}}},
                "FloorSnapshot": {"type": "object", "properties": {
                    "ok": {"type": "boolean"}, "queue": {"type": "string"},
                    "rows": {"type": "array", "items": ref("FloorRow")},
                    "alerts": {"type": "array", "items": ref("FloorAlert")}, "at": {"type": "number"}}},
                "Experiment": {"type": "object", "required": ["id", "variants"], "properties": {
                    "id": {"type": "string"}, "name": {"type": "string"},
                    "assign_by": {"type": "string", "enum": ["queue", "schedule"]},
                    "variants": {"type": "array", "items": {"type": "object", "properties": {
                        "name": {"type": "string"}, "guidance": {"type": "boolean"}, "phrasings": string_list}}},
                    "queues": {"type": "object", "additionalProperties": {"type": "string"}},
                    "schedule": {"type": "array", "items": {"type": "array"}}}},
            },
        },
    }
