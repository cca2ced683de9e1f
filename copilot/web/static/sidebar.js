/* The agent sidebar. Two ways in:
   - direct: /sidebar#token=...&conversation_id=... joins a conversation that the host's backend feeds. The token
     rides in the fragment, which the browser never sends to a server, and is wiped from the address bar once read;
     a ?token= in the query string (which proxies and logs keep) is refused with a notice to the integrator;
   - host-forward: the host page sends postMessage commands (copilot.connect, copilot.start, copilot.snippet,
     copilot.mode, copilot.transfer, copilot.end) and receives every server event back as
     {type: "copilot.event", event, data} and every acknowledgment as {type: "copilot.ack", command, ack}. */
(function () {
  "use strict";
  var params = new URLSearchParams(window.location.search);
  var fragment = new URLSearchParams(window.location.hash.replace(/^#/, ""));
  var body = document.body;
  var allowed = (body.getAttribute("data-allowed-origins") || "").split(",").filter(Boolean);
  allowed.push(window.location.origin);
  if (params.get("theme")) { document.documentElement.setAttribute("data-theme", params.get("theme")); }

  var el = function (id) { return document.getElementById(id); };
  var state = { conversationId: null, turns: {}, order: [], counts: {}, hostOrigin: null, socket: null };
  var LABELS = { frustration: "Frustration", disappointment: "Disappointment", confusion: "Confusion",
    anxiety: "Anxiety", sadness: "Sadness", gratitude: "Gratitude", repeat_contact: "Repeat contact",
    escalation_request: "Escalation request", churn_risk: "Churn risk", urgency: "Urgency", abuse: "Abuse",
    crisis: "Crisis" };

  function toHost(message) {
    if (window.parent !== window && state.hostOrigin) { window.parent.postMessage(message, state.hostOrigin); }
  }

  function setStatus(text) { el("status").textContent = text; }

  function notice(text) {
    var box = el("notice");
    box.textContent = text;
    box.hidden = false;
  }

  function announce(text) {
    var live = el("live");
    live.textContent = "";
    window.setTimeout(function () { live.textContent = text; }, 30);
  }

  function nearBottom(box) { return box.scrollHeight - box.scrollTop - box.clientHeight < 40; }

  function renderText(container, text, cues) {
    var spans = [];
    (cues || []).forEach(function (c) {
      (c.spans || []).forEach(function (s) { spans.push({ start: s[0], end: s[1], cue: c.cue }); });
    });
    spans.sort(function (a, b) { return a.start - b.start || b.end - a.end; });
    container.textContent = "";
    var at = 0;
    spans.forEach(function (s) {
      if (s.start < at || s.end > text.length) { return; }  // overlapping spans: the first one wins
      container.appendChild(document.createTextNode(text.slice(at, s.start)));
      var mark = document.createElement("mark");
      mark.setAttribute("data-cue", s.cue);
      mark.title = LABELS[s.cue] || s.cue;
      mark.textContent = text.slice(s.start, s.end);
      container.appendChild(mark);
      at = s.end;
    });
    container.appendChild(document.createTextNode(text.slice(at)));
  }

  function upsertTurn(id, speaker, text, final, cues) {
    var box = el("transcript");
    var stick = nearBottom(box);
    var turn = state.turns[id];
    if (!turn) {
      turn = document.createElement("p");
      turn.className = "turn";
      turn.setAttribute("data-snippet-id", id);
      var who = document.createElement("span");
      who.className = "who";
      who.textContent = speaker === "agent" ? "Agent" : "Customer";
      var words = document.createElement("span");
      words.className = "words";
      turn.appendChild(who);
      turn.appendChild(words);
      box.appendChild(turn);
      state.turns[id] = turn;
      el("transcript-empty").hidden = true;
    }
    turn.classList.toggle("partial", !final);
    renderText(turn.querySelector(".words"), text, cues);
    if (stick) { box.scrollTop = box.scrollHeight; }
  }

  function renderChips() {
    var chips = el("chips");
    chips.textContent = "";
    Object.keys(state.counts).forEach(function (cue) {
      var chip = document.createElement("span");
      chip.className = "chip";
      chip.setAttribute("data-cue", cue);
      chip.textContent = (LABELS[cue] || cue) + " x" + state.counts[cue];
      chips.appendChild(chip);
    });
    el("chips-empty").hidden = Object.keys(state.counts).length > 0;
  }

  function renderTone(tone) {
    if (!tone) { return; }
    el("tone-label").textContent = tone.label + ", " + tone.trend;
    var points = (tone.recent || []).map(function (v, i, all) {
      var x = all.length > 1 ? (i * 118) / (all.length - 1) + 1 : 60;
      return x.toFixed(1) + "," + (12 - v * 10).toFixed(1);
    });
    el("tone-line").setAttribute("points", points.join(" "));
  }

  function renderTriage(level) {
    var badge = el("triage");
    badge.setAttribute("data-level", String(level));
    badge.textContent = "Triage " + level;
    badge.setAttribute("aria-label", "Triage level " + level + (level === 3 ? ", crisis" : level === 2 ? ", significant distress" : ", mild"));
  }

  function onHighlight(data) {
    if (data.text !== undefined) { upsertTurn(data.snippet_id, "customer", data.text, data.final, data.cues); }
    if (data.final) {
      data.cues.forEach(function (c) { state.counts[c.cue] = c.count; });
      renderChips();
      if (data.line) { announce(data.line); }
    }
    renderTriage(data.triage_level);
    renderTone(data.tone);
  }

  function feedback(id, action, card) {
    if (!state.socket) { return; }
    call("suggestion.feedback", { conversation_id: state.conversationId, suggestion_id: id, action: action })
      .then(function (ack) {
        toHost({ type: "copilot.ack", command: "suggestion.feedback", ack: ack });
        if (ack.ok && (action === "used" || action === "dismissed")) {
          card.remove();
          el("cards-empty").hidden = el("cards").children.length > 0;
        }
      });
  }

  function onSuggestions(data) {
    var cards = el("cards");
    cards.textContent = "";
    data.suggestions.slice(0, 2).forEach(function (s) {
      var card = document.createElement("article");
      card.className = "card";
      card.setAttribute("data-suggestion-id", s.id);
      card.setAttribute("data-stage", s.stage);
      var text = document.createElement("p");
      text.textContent = s.text;
      var why = document.createElement("p");
      why.className = "why";
      why.textContent = s.why;
      var use = document.createElement("button");
      use.className = "use";
      use.type = "button";
      use.textContent = "Use";
      use.setAttribute("aria-label", "Use: " + s.text);
      use.addEventListener("click", function () { feedback(s.id, "used", card); });
      var dismiss = document.createElement("button");
      dismiss.type = "button";
      dismiss.textContent = "Dismiss";
      dismiss.setAttribute("aria-label", "Dismiss: " + s.text);
      dismiss.addEventListener("click", function () { feedback(s.id, "dismissed", card); });
      card.appendChild(text); card.appendChild(why); card.appendChild(use); card.appendChild(document.createTextNode(" "));
      card.appendChild(dismiss);
      cards.appendChild(card);
    });
    el("cards-empty").hidden = cards.children.length > 0;
  }

  function onAlert(data) {
    var alerts = el("alerts");
    var item = document.createElement("div");
    item.className = "alert";
    item.setAttribute("role", "status");
    item.setAttribute("data-kind", data.kind || "note");
    item.textContent = data.message || data.note;
    alerts.insertBefore(item, alerts.firstChild);
    while (alerts.children.length > 3) { alerts.removeChild(alerts.lastChild); }
    announce(item.textContent);
  }

  function connect(token) {
    if (state.socket) { state.socket.close(); }
    // Our own origin only: the page's CSP (connect-src 'self') allows no other server.
    var socket = new window.CopilotSocket({ url: window.location.origin, token: token });
    state.socket = socket;
    socket.on("connect", function () {
      setStatus("connected");
      if (state.conversationId) {
        socket.call("conversation.join", { conversation_id: state.conversationId }).then(function (ack) {
          if (ack.ok) {
            state.counts = ack.counts || {};
            renderChips(); renderTriage(ack.triage_level); renderTone(ack.tone);
            if (ack.on_screen && ack.on_screen.length) { onSuggestions({ suggestions: ack.on_screen.map(function (s) { return Object.assign({ why: "" }, s); }) }); }
          }
        });
      }
    });
    socket.on("disconnect", function () { setStatus("reconnecting…"); });
    socket.on("connect_error", function (err) { setStatus("not connected: " + ((err && err.data && err.data.code) || "error")); });
    ["cue.highlight", "suggestion.push", "alert", "handoff.note", "conversation.summary"].forEach(function (name) {
      socket.on(name, function (data) {
        if (name === "cue.highlight") { onHighlight(data); }
        if (name === "suggestion.push") { onSuggestions(data); }
        if (name === "alert") { onAlert(data); }
        if (name === "handoff.note") { onAlert({ kind: "handoff", message: "Handoff note: " + data.note }); }
        if (name === "conversation.summary") { setStatus("conversation ended"); }
        toHost({ type: "copilot.event", event: name, data: data });
      });
    });
    socket.open();
    setStatus("connecting…");
  }

  // An event answered token_expired was not applied: ask the host for a new token (copilot.token_expired), which
  // it sends back with copilot.refresh; the connection stays open meanwhile.
  function call(event, payload) {
    return state.socket.call(event, payload).then(function (ack) {
      if (ack && ack.ok === false && ack.error && ack.error.code === "token_expired") {
        setStatus("session expired: waiting for a new token");
        toHost({ type: "copilot.token_expired", event: event });
      }
      return ack;
    });
  }

  function refresh(token) {
    state.socket.token = token;  // a reconnect then authenticates with it too
    call("token.refresh", { token: token }).then(function (ack) {
      if (ack.ok) { setStatus("connected"); }
      toHost({ type: "copilot.ack", command: "token.refresh", ack: ack });
    });
  }

  function command(msg) {
    var socket = state.socket;
    var reply = function (name) {
      return function (ack) { toHost({ type: "copilot.ack", command: name, ack: ack }); };
    };
    if (msg.type === "copilot.connect") { el("notice").hidden = true; connect(msg.token); return; }
    if (!socket) { return; }
    if (msg.type === "copilot.refresh") { refresh(msg.token); return; }
    if (msg.type === "copilot.start") {
      state.conversationId = msg.conversation_id;
      call("conversation.start", { conversation_id: msg.conversation_id, channel: msg.channel || "chat",
        queue: msg.queue, consent: msg.consent }).then(reply("conversation.start"));
    } else if (msg.type === "copilot.join") {
      state.conversationId = msg.conversation_id;
      call("conversation.join", { conversation_id: msg.conversation_id }).then(reply("conversation.join"));
    } else if (msg.type === "copilot.snippet") {
      if (msg.speaker === "agent") { upsertTurn(msg.snippet_id, "agent", msg.text, msg.final !== false, []); }
      call("transcript.snippet", { conversation_id: state.conversationId, snippet_id: msg.snippet_id,
        speaker: msg.speaker, text: msg.text, final: msg.final !== false }).then(reply("transcript.snippet"));
    } else if (msg.type === "copilot.mode") {
      call("conversation.mode", { conversation_id: state.conversationId, mode: msg.mode }).then(reply("conversation.mode"));
    } else if (msg.type === "copilot.transfer") {
      call("conversation.transfer", { conversation_id: state.conversationId, to_queue: msg.to_queue }).then(reply("conversation.transfer"));
    } else if (msg.type === "copilot.end") {
      call("conversation.end", { conversation_id: state.conversationId }).then(reply("conversation.end"));
    }
  }

  window.addEventListener("message", function (event) {
    if (allowed.indexOf(event.origin) < 0 || !event.data || typeof event.data.type !== "string") { return; }
    state.hostOrigin = event.origin;
    command(event.data);
  });

  if (params.has("token")) {
    params.delete("token");
    params.delete("conversation_id");
    var rest = params.toString();
    window.history.replaceState(null, "", window.location.pathname + (rest ? "?" + rest : ""));
    setStatus("not connected");
    notice("This sidebar link carries the agent token in its query string (?token=), which proxies and server " +
      "logs keep, so it was not used. Put it after a # instead: /sidebar#token=…&conversation_id=…, " +
      "or send it with postMessage (copilot.connect).");
  } else if (fragment.get("token")) {
    state.conversationId = fragment.get("conversation_id");
    // Out of the address bar, the history and anything copied from them; the page does not reload.
    window.history.replaceState(null, "", window.location.pathname + window.location.search);
    connect(fragment.get("token"));
  }
  if (window.parent !== window) {
    var referrer = document.referrer ? new URL(document.referrer).origin : null;  // the host's policy decides
    if (referrer && allowed.indexOf(referrer) >= 0) { state.hostOrigin = referrer; }
    // A host may send no Referer (our demo does not: Referrer-Policy: no-referrer), so announce readiness to each
    // allowed origin; the browser delivers it only to the one that embeds us.
    allowed.forEach(function (origin) {
      try { window.parent.postMessage({ type: "copilot.ready" }, origin); } catch (e) { /* a malformed origin */ }
    });
  }
})();
