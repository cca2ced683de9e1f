/* The Amazon Connect agent workspace app: the workspace's contact events drive the sidebar frame. Bundled with the
   SDK into dist/app.js (npm run build); nothing is fetched from a CDN when the app runs. */
import { AmazonConnectApp } from "@amazon-connect/app";
import { ContactClient } from "@amazon-connect/contact";
import { ContactFrame } from "./frame.js";
import { settingsFrom } from "./mapping.js";

const box = document.getElementById("copilot");
let settings;
try {
  settings = settingsFrom(window.location.search);
} catch (e) {
  box.textContent = e.message;  // said to whoever registered the app, on the panel itself
  throw e;
}
const frame = new ContactFrame(box, settings);
const shown = (promise) => promise.catch((e) => frame.problem(e));

const { provider } = AmazonConnectApp.init({
  // An app opened on a contact (contact scope) knows its contact from the start.
  onCreate: async (event) => {
    const scope = event.context.scope;
    if (scope && scope.type === "contact") { await shown(frame.show(scope.contactId)); }
  },
  onDestroy: async () => { frame.clear(); },
});

const contacts = new ContactClient({ provider });
contacts.onConnected((data) => shown(frame.show(data.contactId)));
contacts.onCleared((data) => frame.clear(data.contactId));
