/* The Zendesk ticket sidebar app: one ticket per app instance, so one sidebar frame for its conversation. */
import { conversationId, settingsFrom, sidebarUrl, ticketFrom } from "./mapping.js";

const client = window.ZAFClient.init();
const box = document.getElementById("copilot");

function say(text) {
  box.textContent = "";
  const p = document.createElement("p");
  p.className = "idle";
  p.textContent = text;
  box.appendChild(p);
}

async function fetchToken(tokenUrl) {
  // The agent's own session at the token endpoint (SSO cookie) says who they are.
  const answer = await fetch(tokenUrl, { credentials: "include", cache: "no-store" });
  const body = answer.ok ? await answer.json() : {};
  if (!body.token) { throw new Error("the token endpoint answered " + answer.status + " without a token"); }
  return body.token;
}

async function open() {
  const settings = settingsFrom(await client.metadata());
  const context = await client.context();
  const ticket = ticketFrom(context, context.ticketId === undefined ? await client.get("ticket.id") : null);
  const token = await fetchToken(settings.tokenUrl);
  const frame = document.createElement("iframe");
  frame.title = "Empathy Copilot";
  frame.src = sidebarUrl(settings.copilotUrl, token, conversationId(ticket));
  box.textContent = "";
  box.appendChild(frame);
  client.invoke("resize", { width: "100%", height: "640px" });
  // The sidebar asks for a new token when the one it holds expires.
  const origin = new URL(settings.copilotUrl).origin;
  window.addEventListener("message", (event) => {
    if (event.origin !== origin || event.source !== frame.contentWindow) { return; }
    if (event.data && event.data.type === "copilot.token_expired") {
      fetchToken(settings.tokenUrl).then((fresh) => {
        frame.contentWindow.postMessage({ type: "copilot.refresh", token: fresh }, origin);
      }).catch(() => say("The copilot could not sign in again. Reload the ticket."));
    }
  });
}

open().catch((e) => {
  if (window.console) { console.error(e); }
  say("The copilot could not open for this ticket. If this stays, ask your admin.");
});
