/* What the Zendesk kit computes, with no ZAF and no page: a ticket's conversation id and the sidebar's address.
   An ES module, loaded by main.js in the app and by the browser tests alike. */

const TICKET = /^[0-9]{1,20}$/;  // Zendesk ticket ids are integers

/** The copilot conversation of a ticket: zendesk-<ticket id>, so a source can name it too. */
export function conversationId(ticketId) {
  const id = String(ticketId === undefined || ticketId === null ? "" : ticketId);
  if (!TICKET.test(id)) { throw new Error("not a Zendesk ticket id: " + JSON.stringify(id)); }
  return "zendesk-" + id;
}

/** The sidebar in direct mode: the token rides in the fragment, which the browser never sends to a server. */
export function sidebarUrl(copilotUrl, token, conversation) {
  const base = String(copilotUrl).replace(/\/+$/, "");
  return base + "/sidebar#token=" + encodeURIComponent(token) + "&conversation_id=" + encodeURIComponent(conversation);
}

/** The app's settings (manifest parameters) from client.metadata(). */
export function settingsFrom(metadata) {
  const settings = (metadata && metadata.settings) || {};
  if (!/^https?:\/\//.test(settings.copilot_url || "") || !settings.token_url) {
    throw new Error("set the app's copilot_url and token_url in Zendesk's app settings");
  }
  return { copilotUrl: settings.copilot_url, tokenUrl: settings.token_url };
}

/** The ticket on screen, from client.context() (ticketId) or else client.get("ticket.id")'s answer. */
export function ticketFrom(context, got) {
  if (context && context.ticketId !== undefined && context.ticketId !== null) { return context.ticketId; }
  return got ? got["ticket.id"] : undefined;
}
