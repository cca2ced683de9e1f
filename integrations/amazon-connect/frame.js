/* The sidebar frame of the Amazon Connect kit: one iframe for the contact on screen, a new one per contact, none
   between contacts. No SDK here: app.js calls show() and clear() from the workspace's contact events. */
import { conversationId, sidebarUrl } from "./mapping.js";

/** The agent's token from the tenant's token endpoint: GET with the agent's own cookies, answering {"token"}. */
export async function fetchToken(tokenUrl) {
  const answer = await fetch(tokenUrl, { credentials: "include", cache: "no-store" });
  const body = answer.ok ? await answer.json() : {};
  if (!body.token) { throw new Error("the token endpoint answered " + answer.status + " without a token"); }
  return body.token;
}

export class ContactFrame {
  /** container: the element the sidebar fills; settings: {copilotUrl, tokenUrl}. */
  constructor(container, settings) {
    this.container = container;
    this.settings = settings;
    this.origin = new URL(settings.copilotUrl).origin;
    this.contactId = null;
    this.idle = container.ownerDocument.createElement("p");
    this.idle.className = "idle";
    this.idle.textContent = "The copilot appears here when a contact connects.";
    container.appendChild(this.idle);
    // The sidebar asks for a new token when the one it holds expires (copilot.token_expired).
    window.addEventListener("message", (event) => {
      const frame = this.frame();
      if (event.origin !== this.origin || !frame || event.source !== frame.contentWindow) { return; }
      if (event.data && event.data.type === "copilot.token_expired") {
        fetchToken(this.settings.tokenUrl).then((token) => {
          frame.contentWindow.postMessage({ type: "copilot.refresh", token: token }, this.origin);
        }).catch((e) => this.problem(e));
      }
    });
  }

  frame() { return this.container.querySelector("iframe"); }

  /** The contact on screen now: a frame of its own, so nothing of the previous customer can stay. */
  async show(contactId) {
    const conversation = conversationId(contactId);
    if (conversation === this.contactId && this.frame()) { return; }
    this.contactId = conversation;
    const token = await fetchToken(this.settings.tokenUrl);
    if (this.contactId !== conversation) { return; }  // another contact came meanwhile
    this.removeFrame();
    const frame = this.container.ownerDocument.createElement("iframe");
    frame.title = "Empathy Copilot";
    frame.setAttribute("data-contact-id", conversation);
    frame.src = sidebarUrl(this.settings.copilotUrl, token, conversation);
    this.idle.hidden = true;
    this.container.appendChild(frame);
  }

  /** The contact ended (cleared): its cues leave the screen with it. Another contact's clear changes nothing. */
  clear(contactId) {
    if (contactId && contactId !== this.contactId) { return; }
    this.contactId = null;
    this.removeFrame();
    this.idle.textContent = "The copilot appears here when a contact connects.";
    this.idle.hidden = false;
  }

  removeFrame() {
    const frame = this.frame();
    if (frame) { frame.remove(); }
  }

  problem(error) {
    if (window.console) { console.error(error); }
    this.removeFrame();
    this.idle.textContent = "The copilot could not sign in. Reload the app; if this stays, ask your admin.";
    this.idle.hidden = false;
  }
}
