/* Empathy Copilot beside a Service Cloud Voice call: the Voice Toolkit's call and TRANSCRIPT events are relayed into
   the sidebar iframe with its postMessage commands (copilot.connect, .start, .snippet, .end). */
import { LightningElement, api } from "lwc";
import { Relay, TOOLKIT_EVENTS } from "./relay";

export default class CopilotSidebar extends LightningElement {
  @api copilotUrl;  // the copilot server, e.g. https://copilot.example.com (a CSP Trusted Site, frame-src)
  @api tokenUrl;    // the tenant's token endpoint: GET -> {"token"} for the signed-in agent (connect-src)
  relay = new Relay();
  subscribed = false;

  // Host-forward mode: no token in any address; it comes by copilot.connect once the sidebar says it is ready.
  get sidebarSrc() { return this.copilotUrl ? this.copilotUrl.replace(/\/+$/, "") + "/sidebar" : "about:blank"; }

  get origin() { return new URL(this.copilotUrl).origin; }

  connectedCallback() {
    this.onMessage = (event) => this.fromSidebar(event);
    window.addEventListener("message", this.onMessage);
  }

  // The toolkit element exists only once the template has rendered.
  renderedCallback() {
    if (this.subscribed) { return; }
    const toolkit = this.template.querySelector("lightning-service-cloud-voice-toolkit-api");
    if (!toolkit) { return; }
    this.onToolkit = (event) => this.post(this.relay.toolkit(event.type, event.detail));
    TOOLKIT_EVENTS.forEach((name) => toolkit.addEventListener(name, this.onToolkit));
    this.subscribed = true;
  }

  disconnectedCallback() {
    window.removeEventListener("message", this.onMessage);
    const toolkit = this.template.querySelector("lightning-service-cloud-voice-toolkit-api");
    if (toolkit && this.onToolkit) { TOOLKIT_EVENTS.forEach((name) => toolkit.removeEventListener(name, this.onToolkit)); }
    this.subscribed = false;
  }

  frame() { return this.template.querySelector("iframe"); }

  fromSidebar(event) {
    const frame = this.frame();
    if (event.origin !== this.origin || !frame || event.source !== frame.contentWindow || !event.data) { return; }
    const message = event.data;
    if (message.type === "copilot.ready") {
      this.token().then((token) => this.post(this.relay.connect(token))).catch(() => {});
    } else if (message.type === "copilot.token_expired") {
      this.token().then((token) => this.post([{ type: "copilot.refresh", token: token }])).catch(() => {});
    } else if (message.type === "copilot.ack") {
      this.post(this.relay.ack(message.command, message.ack));
    }
  }

  async token() {
    const answer = await fetch(this.tokenUrl, { credentials: "include", cache: "no-store" });
    const body = answer.ok ? await answer.json() : {};
    if (!body.token) { throw new Error("the token endpoint answered " + answer.status + " without a token"); }
    return body.token;
  }

  post(commands) {
    const frame = this.frame();
    if (!frame) { return; }
    commands.forEach((command) => frame.contentWindow.postMessage(command, this.origin));
  }
}
