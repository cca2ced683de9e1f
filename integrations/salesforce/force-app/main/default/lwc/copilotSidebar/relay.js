/* The Salesforce kit's pure part: Service Cloud Voice Toolkit events in, the sidebar's postMessage commands out.
   An ES module with no Lightning import, so the LWC and the browser tests load the same file. */

// copilot.protocol.ID; a Voice call id (the telephony system's, e.g. an Amazon Connect contact id) fits as it is.
const ID = /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$/;

/** The copilot conversation of a call: its callId, so a transcript source keyed by the same call lands in it. */
export function conversationId(callId) {
  const id = String(callId || "");
  if (!ID.test(id)) { throw new Error("not a conversation id: " + JSON.stringify(id)); }
  return id;
}

/** Who spoke: the Toolkit names the rep's side "Agent" (or "Supervisor" on a barge-in); the caller is "EndUser". */
export function speakerOf(role) {
  return role === "Agent" || role === "Supervisor" ? "agent" : "customer";
}

/** One TRANSCRIPT event's detail as a copilot.snippet: each event is one whole utterance (final), unless a
    toolkit that sends interim results marks it isFinal: false. */
export function snippetOf(detail) {
  const text = detail.content && typeof detail.content.text === "string" ? detail.content.text : "";
  const id = detail.id || "t-" + (detail.serverReceivedTimestamp || detail.clientSentTimestamp || Date.now());
  return { type: "copilot.snippet", snippet_id: String(id).replace(/[^A-Za-z0-9._:@-]/g, "-").slice(0, 128),
    speaker: speakerOf(detail.sender && detail.sender.role), text: text, final: detail.isFinal !== false };
}

/** The call in hand and what waits for the sidebar. Each method returns the commands to post, in order. */
export class Relay {
  constructor() {
    this.callId = null;
    this.open = false;     // copilot.connect was sent
    this.held = [];        // commands from before the sidebar was ready
    this.joining = false;  // a copilot.join is out: its snippets wait for its answer
    this.waiting = [];
  }

  /** The sidebar said copilot.ready and the token is in hand; a reloaded sidebar joins the call again. */
  connect(token) {
    const again = this.open;
    this.open = true;
    const out = [{ type: "copilot.connect", token: token }];
    if (again && this.callId) { out.push(this.join(this.callId)); }
    return out.concat(this.held.splice(0));
  }

  /** A Voice Toolkit event (its type and detail). */
  toolkit(type, detail) {
    const out = this.on(type, detail || {});
    if (!this.open) { this.held = this.held.concat(out); return []; }
    return out;
  }

  /** The sidebar's copilot.ack for a command: a join that found no conversation starts it instead. */
  ack(command, ack) {
    if (command !== "conversation.join" || !this.joining) { return []; }
    this.joining = false;
    const waiting = this.waiting.splice(0);
    const missing = ack && ack.ok === false && ack.error && ack.error.code === "unknown_conversation";
    return missing ? [this.start(this.callId)].concat(waiting) : waiting;
  }

  on(type, detail) {
    if (type === "callstarted" || type === "callconnected") {
      if (detail.callId === this.callId) { return []; }  // callconnected follows callstarted for the same call
      this.callId = detail.callId;
      this.joining = false;
      this.waiting = [];
      return [this.start(detail.callId)];
    }
    if (type === "transcript") {
      const snippet = snippetOf(detail);
      if (!snippet.text.trim()) { return []; }
      if (detail.callId !== this.callId) {  // the component loaded mid-call: the call may be running already
        this.callId = detail.callId;
        this.joining = true;
        this.waiting = [snippet];
        return [this.join(detail.callId)];
      }
      if (this.joining) { this.waiting.push(snippet); return []; }
      return [snippet];
    }
    if (type === "callended" && detail.callId === this.callId) {
      this.callId = null;
      this.joining = false;
      this.waiting = [];
      return [{ type: "copilot.end" }];
    }
    return [];
  }

  start(callId) {
    return { type: "copilot.start", conversation_id: conversationId(callId), channel: "voice" };
  }

  join(callId) {
    return { type: "copilot.join", conversation_id: conversationId(callId) };
  }
}

/** The Voice Toolkit events the relay listens to. */
export const TOOLKIT_EVENTS = ["callstarted", "callconnected", "transcript", "callended"];
