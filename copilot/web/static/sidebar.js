/* The agent sidebar. Two ways in:
   - direct: /sidebar#token=...&conversation_id=... joins a conversation that the host's backend feeds. The token
     rides in the fragment, which the browser never sends to a server, and is wiped from the address bar once read;
     a ?token= in the query string (which proxies and logs keep) is refused with a notice to the integrator;
   - host-forward: the host page sends postMessage commands (copilot.connect, copilot.start, copilot.snippet,
     copilot.mode, copilot.transfer, copilot.end, copilot.raise_hand) and receives every server event back as
     {type: "copilot.event", event, data} and every acknowledgment as {type: "copilot.ack", command, ack}. */
(function () {
  "use strict";
  var params = new URLSearchParams(window.location.search);
  var fragment = new URLSearchParams(window.location.hash.replace(/^#/, ""));
  var body = document.body;
  var allowed = (body.getAttribute("data-allowed-origins") || "").split(",").filter(Boolean);
  allowed.push(window.location.origin);
  if (params.get("theme")) { document.documentElement.setAttribute("data-theme", params.get("theme")); }

  var page = window.CopilotPage;
  var el = page.byId;
  var make = page.make;
  var state = { conversationId: null, turns: {}, counts: {}, hostOrigin: null, socket: null, follow: true,
    autoTop: 0, joined: false, starting: false, failures: 0, started: Promise.resolve(), handRaised: false,
    ended: false };

  function toHost(message) {
    if (window.parent !== window && state.hostOrigin) { window.parent.postMessage(message, state.hostOrigin); }
  }

  function setStatus(text) { el("status").textContent = text; }

  function notice(text) {
    var box = el("notice");
    box.textContent = text;
    box.hidden = false;
  }

  // What an agent can do about each refusal, in words: the protocol's codes are for integrators, not for agents.
  var PLAIN = {
    auth_required: "The copilot was opened without a sign-in. Open it again from your CRM, or ask your admin.",
    invalid_token: "This sign-in is not one this copilot issued, so it cannot connect. Ask your admin for a new " +
      "copilot link or token.",
    token_expired: "Your copilot session has expired. Reload the CRM page to sign in again.",
    forbidden: "This sign-in belongs to someone else. Reload the CRM page; if this stays, ask your admin.",
    too_many_connections: "The copilot is open in too many tabs or windows. Close the ones you do not need, " +
      "then reload this page.",
    rate_limited: "The copilot is getting more than it can take right now, so some of this call was skipped. " +
      "Carry on; it catches up by itself.",
    unknown_conversation: "This conversation is not known to the copilot. Check the link, or ask your admin.",
    conversation_exists: "Another agent already has a conversation with this id. Ask your admin.",
    conversation_ended: "This conversation has ended; the copilot shows nothing more for it.",
    too_many_conversations: "The copilot has too many live conversations right now. Ask your admin.",
    store_unavailable: "The copilot cannot save right now, so some of this call may be missing. If this stays, " +
      "tell your admin.",
    internal_error: "Something went wrong in the copilot. If this keeps happening, tell your admin."
  };

  function plain(error) {
    var code = error && error.code;
    return PLAIN[code] || "The copilot could not do that. If this keeps happening, tell your admin.";
  }

  // The end of every promise chain: a bug in this page is said on screen, not lost in an unhandled rejection.
  function broke(e) {
    if (window.console) { console.error(e); }
    notice(plain({ code: "internal_error" }));
  }

  function announce(text) {
    var live = el("live");
    live.textContent = "";
    window.setTimeout(function () { live.textContent = text; }, 30);
  }

  function nearBottom(box) { return box.scrollHeight - box.scrollTop - box.clientHeight < 40; }

  // The transcript follows the newest turn unless the agent scrolled up to read: only a scroll says so, never a
  // change of size (cards and alerts arriving shrink the box without the agent doing anything).
  function followNewest() {
    var box = el("transcript");
    if (state.follow) { box.scrollTop = box.scrollHeight; state.autoTop = box.scrollTop; }
  }

  // Scroll events arrive a frame late, when more turns may have come: only a move up from where we put the box is
  // the agent's; back at the bottom, following resumes.
  function onScroll() {
    var box = el("transcript");
    if (nearBottom(box)) { state.follow = true; } else if (box.scrollTop < state.autoTop - 4) { state.follow = false; }
  }

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
      var mark = make("mark", { "data-cue": s.cue, title: page.cueLabel(s.cue), text: text.slice(s.start, s.end) });
      var colour = page.cueColour(s.cue);
      if (colour) { mark.style.setProperty("--cue", colour); }  // CSSOM, which the CSP allows, not a style= attribute
      container.appendChild(mark);
      at = s.end;
    });
    container.appendChild(document.createTextNode(text.slice(at)));
  }

  function upsertTurn(id, speaker, text, final, cues) {
    var box = el("transcript");
    var turn = state.turns[id];
    if (!turn) {
      turn = make("p", { className: "turn", "data-speaker": speaker, "data-snippet-id": id }, [
        make("span", { className: "who", text: speaker === "agent" ? "Agent" : "Customer" }),
        make("span", { className: "words" })]);
      box.appendChild(turn);
      state.turns[id] = turn;
      el("transcript-empty").hidden = true;
    }
    turn.classList.toggle("partial", !final);
    renderText(turn.querySelector(".words"), text, cues);
    followNewest();
  }

  function transcriptLine(text) {
    el("transcript").appendChild(make("p", { className: "gap", text: text }));
    followNewest();
  }

  function renderChips() {
    var chips = el("chips");
    chips.textContent = "";
    Object.keys(state.counts).forEach(function (cue) {
      chips.appendChild(make("span", { className: "chip", "data-cue": cue, text: page.cueLabel(cue) + " x" + state.counts[cue] }));
    });
    el("chips-empty").hidden = Object.keys(state.counts).length > 0;
  }

  function renderTone(tone) {
    if (!tone) { return; }
    el("tone-label").textContent = tone.label + ", " + tone.trend;
    var recent = tone.recent || [];
    if (recent.length === 1) { recent = [recent[0], recent[0]]; }  // one turn draws a level line, not nothing
    var points = recent.map(function (v, i, all) {
      var x = all.length > 1 ? (i * 118) / (all.length - 1) + 1 : 60;
      return x.toFixed(1) + "," + (12 - v * 10).toFixed(1);
    });
    el("tone-line").setAttribute("points", points.join(" "));
  }

  function renderTriage(level) {
    var badge = el("triage");
    badge.hidden = false;
    badge.setAttribute("data-level", String(level));
    badge.textContent = "Triage " + level;
    badge.setAttribute("aria-label", "Triage level " + level + ", " + page.triageLabel(level));
  }

  function onHighlight(data) {
    if (data.speaker === "agent") {  // the agent's own turn, for every screen on the call: no cues to count
      if (data.text !== undefined) { upsertTurn(data.snippet_id, "agent", data.text, data.final, []); }
      return;
    }
    // A server that predates `speaker` sends customer turns only.
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
        if (!ack.ok) { refused(ack.error); return; }
        if (action === "used" || action === "dismissed") {
          card.remove();
          el("cards-empty").hidden = el("cards").children.length > 0;
        }
      }).catch(broke);
  }

  function onSuggestions(data) {
    var cards = el("cards");
    cards.textContent = "";
    data.suggestions.slice(0, 2).forEach(function (s) {
      var use = make("button", { className: "use", type: "button", text: "Use", "aria-label": "Use: " + s.text });
      var dismiss = make("button", { type: "button", text: "Dismiss", "aria-label": "Dismiss: " + s.text });
      var card = make("article", { className: "card", "data-suggestion-id": s.id, "data-stage": s.stage }, [
        make("p", { text: s.text }),
        // the reason beside the buttons: two cards fit a short sidebar
        make("div", { className: "row" }, [make("p", { className: "why", text: s.why }), use, dismiss])]);
      use.addEventListener("click", function () { feedback(s.id, "used", card); });
      dismiss.addEventListener("click", function () { feedback(s.id, "dismissed", card); });
      cards.appendChild(card);
    });
    el("cards-empty").hidden = cards.children.length > 0;
  }

  function onAlert(data) {
    var alerts = el("alerts");
    var item = make("div", { className: "alert", role: "status", "data-kind": data.kind || "note",
      text: data.message || data.note });
    alerts.insertBefore(item, alerts.firstChild);
    while (alerts.children.length > 3) { alerts.removeChild(alerts.lastChild); }
    announce(item.textContent);
  }

  // The button says whether the team lead has been asked; it asks again only once they have answered.
  function renderHand() {
    var button = el("raise-hand");
    button.disabled = !state.conversationId || state.handRaised || state.ended;
    button.setAttribute("aria-pressed", String(state.handRaised));
    button.textContent = state.handRaised ? "Hand raised" : "Raise hand";
  }

  // Page the floor for the conversation on screen, from the button or the host's copilot.raise_hand.
  function raiseHand() {
    var cid = state.conversationId;
    if (!state.socket || !cid) { return; }
    state.handRaised = true;
    renderHand();
    state.started.then(function () {
      return call("conversation.raise_hand", { conversation_id: cid });
    }).then(function (ack) {
      if (state.conversationId === cid) {
        if (ack.ok) { announce("Your team lead has been asked to help."); } else {
          state.handRaised = false;
          renderHand();
          refused(ack.error);
        }
      }
      toHost({ type: "copilot.ack", command: "conversation.raise_hand", ack: ack });
    }).catch(broke);
  }

  // A lead's answer to a raised hand or a whisper: newest on top, the last five kept, never sent to the customer.
  function onLeadMessage(kind, data) {
    var box = el("lead-messages");
    var words = kind === "answer" ? (data.message || data.answer) : data.text;
    var item = make("div", { className: "lead-message", role: "status", "data-kind": kind }, [
      make("span", { className: "from", text: (data.lead || "Team lead") + (kind === "whisper" ? " \u00b7 whisper" : "") }),
      make("span", { className: "words", text: words })]);
    box.insertBefore(item, box.firstChild);
    while (box.children.length > 5) { box.removeChild(box.lastChild); }
    el("lead").hidden = false;
    if (kind === "answer") { state.handRaised = false; renderHand(); }
    announce("From your team lead: " + words);
  }

  // A new conversation starts from nothing: the previous customer's cues, alerts, cards and words must not stay.
  function reset() {
    state.turns = {};
    state.counts = {};
    state.follow = true;
    state.autoTop = 0;
    state.joined = false;
    renderChips();
    el("alerts").textContent = "";
    el("cards").textContent = "";
    el("cards-empty").hidden = false;
    var box = el("transcript");
    Array.prototype.slice.call(box.children).forEach(function (child) {
      if (child.id !== "transcript-empty") { box.removeChild(child); }
    });
    el("transcript-empty").hidden = false;
    el("transcript-empty").textContent = "Waiting for the conversation…";
    var badge = el("triage");
    badge.hidden = true;
    badge.setAttribute("data-level", "1");
    el("tone-label").textContent = "neutral, steady";
    el("tone-line").setAttribute("points", "");
    el("notice").hidden = true;
    el("live").textContent = "";
    el("lead-messages").textContent = "";
    el("lead").hidden = true;
    state.handRaised = false;
    state.ended = false;
    renderHand();
  }

  function refused(error) {
    // An expired token is the host's to refresh (copilot.token_expired), a dropped link the socket's to retry.
    if (error && (error.code === "token_expired" || error.code === "disconnected")) { return; }
    notice(plain(error));
    if (error && error.code === "unknown_conversation") {
      el("transcript-empty").textContent = "No conversation to show.";
    }
  }

  // The server keeps no transcript (by design), so a join brings back counts and cards but not the words.
  function joined(ack) {
    if (!ack.ok) { refused(ack.error); return; }
    el("notice").hidden = true;
    state.counts = ack.counts || {};
    renderChips();
    var happened = Object.keys(state.counts).length > 0 || (ack.tone && (ack.tone.recent || []).length > 0) ||
      (ack.on_screen || []).length > 0;
    if (happened || ack.triage_level > 1) { renderTriage(ack.triage_level); renderTone(ack.tone); }
    if (ack.on_screen && ack.on_screen.length) {
      onSuggestions({ suggestions: ack.on_screen.map(function (s) { return Object.assign({ why: "" }, s); }) });
    }
    if (state.joined || happened) {
      transcriptLine(ack.claimed ? "Earlier turns of this call are not shown; their counts are." :
        Object.keys(state.turns).length ?
        "Reconnected: turns said meanwhile are not shown; counts and cards are kept." :
        "Earlier turns are not shown after reconnecting; counts and cards are kept.");
      el("transcript-empty").hidden = true;
    }
    if (ack.ended) { setStatus("conversation ended"); state.ended = true; }
    state.handRaised = Boolean(ack.hand && !ack.hand.answer);  // a hand raised before a reload is still up
    state.joined = true;
    renderHand();
  }

  function connect(token) {
    if (state.socket) { state.socket.close(); }
    // Our own origin only: the page's CSP (connect-src 'self') allows no other server.
    var socket = new window.CopilotSocket({ url: window.location.origin, token: token });
    state.socket = socket;
    socket.on("connect", function () {
      setStatus("connected");
      state.failures = 0;
      if (state.conversationId && !state.starting) {
        socket.call("conversation.join", { conversation_id: state.conversationId }).then(joined).catch(broke);
      }
    });
    socket.on("disconnect", function () { setStatus("reconnecting…"); });
    socket.on("unreachable", function () {
      state.failures += 1;
      setStatus("cannot reach the copilot; retrying…");
      if (state.failures === 3) {
        notice("The copilot server cannot be reached from this page. It keeps trying; if this stays, ask your " +
          "admin (the server may not allow this page's address).");
      }
    });
    socket.on("connect_error", function (err) {
      var error = (err && err.data) || err || {};
      setStatus("not connected");
      notice(plain(error));
    });
    ["cue.highlight", "suggestion.push", "alert", "handoff.note", "conversation.summary", "lead.answer",
      "lead.whisper"].forEach(function (name) {
      socket.on(name, function (data) {
        // The socket may still be in the room of the conversation this sidebar showed before.
        if (data && data.conversation_id && state.conversationId && data.conversation_id !== state.conversationId) {
          return;
        }
        if (name === "cue.highlight") { onHighlight(data); }
        if (name === "suggestion.push") { onSuggestions(data); }
        if (name === "alert") { onAlert(data); }
        if (name === "handoff.note") { onAlert({ kind: "handoff", message: "Handoff note: " + data.note }); }
        if (name === "conversation.summary") { setStatus("conversation ended"); state.ended = true; renderHand(); }
        if (name === "lead.answer") { onLeadMessage("answer", data); }
        if (name === "lead.whisper") { onLeadMessage("whisper", data); }
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
    }).catch(broke);
  }

  // The server may handle one connection's events side by side, so a snippet sent right behind its start can
  // arrive first and be refused: every command waits until the start (or join) before it is answered.
  function command(msg) {
    var socket = state.socket;
    var reply = function (name) {
      return function (ack) { toHost({ type: "copilot.ack", command: name, ack: ack }); };
    };
    var after = function (event, payload, refusedThen) {
      var cid = state.conversationId;  // the conversation at the time of posting, not the one after a new start
      state.started.then(function () {
        return call(event, Object.assign({ conversation_id: cid }, payload));
      }).then(function (ack) {
        if (ack && ack.ok === false && refusedThen && state.conversationId === cid) { refusedThen(ack); }
        reply(event)(ack);
      }).catch(broke);
    };
    if (msg.type === "copilot.connect") { el("notice").hidden = true; connect(msg.token); return; }
    if (!socket) { return; }
    if (msg.type === "copilot.refresh") { refresh(msg.token); return; }
    if (msg.type === "copilot.start") {
      reset();
      state.conversationId = msg.conversation_id;
      renderHand();
      state.starting = true;  // a connect meanwhile must not join a conversation not yet started
      state.started = call("conversation.start", { conversation_id: msg.conversation_id, channel: msg.channel || "chat",
        queue: msg.queue, consent: msg.consent }).then(function (ack) {
        if (state.conversationId === msg.conversation_id) {
          state.starting = false;
          // a conversation a transcript source started unclaimed: the start claimed it, with the counts so far
          if (ack.ok && ack.claimed) { joined(ack); } else if (ack.ok) { state.joined = true; } else { refused(ack.error); }
        }
        reply("conversation.start")(ack);
      }).catch(broke);
    } else if (msg.type === "copilot.join") {
      if (msg.conversation_id !== state.conversationId) { reset(); }
      state.conversationId = msg.conversation_id;
      renderHand();
      state.started = call("conversation.join", { conversation_id: msg.conversation_id }).then(function (ack) {
        if (state.conversationId === msg.conversation_id) { joined(ack); }
        reply("conversation.join")(ack);
      }).catch(broke);
    } else if (msg.type === "copilot.snippet") {
      if (msg.speaker === "agent") { upsertTurn(msg.snippet_id, "agent", msg.text, msg.final !== false, []); }
      after("transcript.snippet", { snippet_id: msg.snippet_id, speaker: msg.speaker, text: msg.text,
        final: msg.final !== false }, function (ack) {
        // Refused (the store is down, the rate limit...): the turn is still the customer's words on screen, unmarked,
        // and the agent is told why nothing was read from it.
        if (msg.speaker !== "agent") { upsertTurn(msg.snippet_id, "customer", msg.text, msg.final !== false, []); }
        refused(ack.error);
      });
    } else if (msg.type === "copilot.mode") {
      after("conversation.mode", { mode: msg.mode });
    } else if (msg.type === "copilot.transfer") {
      after("conversation.transfer", { to_queue: msg.to_queue });
    } else if (msg.type === "copilot.end") {
      after("conversation.end", {});
    } else if (msg.type === "copilot.raise_hand") {
      raiseHand();
    }
  }


  el("transcript").addEventListener("scroll", onScroll);
  el("raise-hand").addEventListener("click", raiseHand);
  if (window.ResizeObserver) { new window.ResizeObserver(followNewest).observe(el("transcript")); }

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
    renderHand();
  }
  if (window.parent !== window) {
    var referrer = document.referrer ? new URL(document.referrer).origin : null;  // the host's policy decides
    if (referrer && allowed.indexOf(referrer) >= 0) { state.hostOrigin = referrer; }
    // A host may send no Referer (our demo does not: Referrer-Policy: no-referrer). Chromium and Safari name the
    // embedding page's origin in location.ancestorOrigins; elsewhere announce readiness to each allowed origin, and
    // the browser delivers it only to the one that embeds us.
    var ancestors = window.location.ancestorOrigins;
    var parentOrigin = ancestors && ancestors.length ? ancestors[0] : null;
    var targets = parentOrigin ? allowed.filter(function (o) { return o === parentOrigin; }) : allowed;
    if (parentOrigin && targets.length) { state.hostOrigin = parentOrigin; }
    targets.forEach(function (origin) {
      try { window.parent.postMessage({ type: "copilot.ready" }, origin); } catch (e) { /* a malformed origin */ }
    });
  }
})();
