/* What the Amazon Connect kit computes, with no SDK and no page: the conversation id of a contact and the sidebar's
   address for it. An ES module, loaded by app.js (bundled) and by the browser tests alike. */

// copilot.protocol.ID: a Connect contact id (a UUID) always fits; anything else is refused, never guessed at.
const ID = /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$/;

/** The copilot conversation of a contact: its contact id as it is, so Contact Lens segments land in the same one. */
export function conversationId(contactId) {
  const id = String(contactId || "");
  if (!ID.test(id)) { throw new Error("not a conversation id: " + JSON.stringify(id)); }
  return id;
}

/** The sidebar in direct mode: the token rides in the fragment, which the browser never sends to a server. */
export function sidebarUrl(copilotUrl, token, conversation) {
  const base = String(copilotUrl).replace(/\/+$/, "");
  return base + "/sidebar#token=" + encodeURIComponent(token) + "&conversation_id=" + encodeURIComponent(conversation);
}

/** The kit's two settings, from the access URL's query string: ?copilot=https://...&token_url=https://... */
export function settingsFrom(search) {
  const query = new URLSearchParams(search);
  const copilotUrl = query.get("copilot") || "";
  const tokenUrl = query.get("token_url") || "";
  if (!/^https?:\/\//.test(copilotUrl) || !tokenUrl) {
    throw new Error("the app's access URL needs ?copilot=<copilot server URL>&token_url=<token endpoint>");
  }
  return { copilotUrl: copilotUrl, tokenUrl: tokenUrl };
}
