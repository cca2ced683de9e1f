/* The team lead's live floor: every live conversation of the tenant, highest risk first, fed by the /floor
   namespace (a snapshot answers floor.watch, then floor.diff changes only the rows it names); alerts to claim,
   raised hands to answer, whispers to send. It shows the customer's cues and what the agent did, never anything
   about the agent's feelings: the law forbids reading an employee's emotions at work. */
(function () {
  "use strict";
  var page = window.CopilotPage;
  var make = page.make;
  var $ = page.byId;
  var KEY = "copilot-lead-token";  // the console's key: one lead token serves both pages of a tab
  var HOW = " Paste a lead token: python -m copilot token --role lead --tenant TENANT --agent YOU.";
  var PLAIN = {
    auth_required: "Paste a lead token to start." + HOW,
    invalid_token: "That token was not accepted: this server did not issue it, or it was cut short." + HOW,
    token_expired: "That token has expired." + HOW,
    forbidden: "That token may not watch the floor: it needs a lead (or admin) token, not an agent's." + HOW
  };
  // What went wrong with something the lead did, in words; the protocol's codes are for integrators.
  var WORDS = {
    text_too_long: "That note is longer than 280 characters. Shorten it, then send it again.",
    rate_limited: "That was too much at once. Wait a second, then try again.",
    unknown_conversation: "That conversation is not on this floor any more.",
    conversation_ended: "That conversation has ended.",
    not_found: "That alert is no longer open.",
    invalid_payload: "The server could not take that as it was.",
    disconnected: "The connection dropped before the server answered. Try again once it says connected."
  };
  var WHISPER_WORDS = {
    rate_limited: "Too many whispers in a row. Wait a second, then send it again.",
    invalid_payload: "Write a note first (at most 280 characters)."
  };
  var ANSWERS = { on_my_way: "On my way", take_it_from_here: "Take it from here" };
  var MODES = { normal: "normal", verification: "verification", transactional: "transactional",
    "agent-protection": "agent protection" };
  var TRENDS = { worsening: "\u2198", improving: "\u2197", steady: "\u2192" };
  var CUE_ORDER = {};
  page.legend.cues.forEach(function (c, i) { CUE_ORDER[c.name] = i; });

  var state = { token: "", socket: null, queue: "", watchSeq: 0, offset: 0, rows: {}, order: [], alerts: {},
    queues: {}, visible: new Set(), whisperFor: null, tokenProblem: false };
  var rowsBox = $("rows");
  var observer = window.IntersectionObserver ? new window.IntersectionObserver(seen, { root: $("board") }) : null;

  function say(text) { $("message").textContent = text; state.tokenProblem = false; }

  function sayError(error) {
    say(PLAIN[error.code] || words(error));
    state.tokenProblem = Boolean(PLAIN[error.code]);
  }

  function words(error, own) {
    var code = error && error.code;
    return (own && own[code]) || PLAIN[code] || WORDS[code] || (error && error.message) || "That did not work.";
  }

  function setStatus(text) { $("status").textContent = text; }

  function announce(text) {
    var live = $("live");
    live.textContent = "";
    window.setTimeout(function () { live.textContent = text; }, 30);
  }

  // The server's clock, from the browser's and the offset the last snapshot measured: ticking times stay right on a
  // lead's machine whose clock is off.
  function now() { return Date.now() / 1000 + state.offset; }

  function duration(seconds) {
    var s = Math.max(0, Math.floor(seconds));
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), rest = s % 60;
    var mm = h ? (m < 10 ? "0" : "") + m : String(m);
    return (h ? h + ":" : "") + mm + ":" + (rest < 10 ? "0" : "") + rest;
  }

  function clock(at) { return new Date((at - state.offset) * 1000).toLocaleTimeString(); }

  /* < 0 when row a belongs above row b: the server's `risk` arrays compared element by element, greater first (a
     longer array beats its own prefix, as in Python). The conversation id only breaks exact ties, so that the
     order is the same on every lead's screen. */
  function ranks(a, b) {
    var x = a.risk || [], y = b.risk || [];
    for (var i = 0; i < x.length || i < y.length; i++) {
      if (i >= x.length) { return 1; }
      if (i >= y.length) { return -1; }
      if (x[i] !== y[i]) { return x[i] > y[i] ? -1 : 1; }
    }
    return a.conversation_id < b.conversation_id ? -1 : (a.conversation_id > b.conversation_id ? 1 : 0);
  }

  // The first place in the board's order where `data` ranks above the row already there (binary search).
  function place(data) {
    var lo = 0, hi = state.order.length;
    while (lo < hi) {
      var mid = (lo + hi) >> 1;
      if (ranks(data, state.rows[state.order[mid]].data) <= 0) { hi = mid; } else { lo = mid + 1; }
    }
    return lo;
  }

  function where(entry) {
    var at = place(entry.data);
    return state.order[at] === entry.data.conversation_id ? at : state.order.indexOf(entry.data.conversation_id);
  }

  function fill(node, children) {
    node.textContent = "";
    children.forEach(function (child) { if (child) { node.appendChild(child); } });
  }

  // A time that counts up each second (while its row is in view): the ticker rewrites only these nodes.
  function ticking(ticks, since, suffix) {
    var tick = { node: make("span", { className: "ticks" }), since: since, suffix: suffix || "" };
    tick.node.textContent = duration(now() - since) + tick.suffix;
    ticks.push(tick);
    return tick.node;
  }

  function tickRow(entry, t) {
    Object.keys(entry.ticks).forEach(function (cell) {
      entry.ticks[cell].forEach(function (tick) {
        var text = duration(t - tick.since) + tick.suffix;
        if (tick.node.textContent !== text) { tick.node.textContent = text; }
      });
    });
  }

  function tick() {
    var t = now();
    if (!observer) { state.order.forEach(function (id) { tickRow(state.rows[id], t); }); return; }
    state.visible.forEach(function (id) { if (state.rows[id]) { tickRow(state.rows[id], t); } });
  }

  function seen(changes) {
    changes.forEach(function (change) {
      var id = change.target.getAttribute("data-conversation-id");
      if (!change.isIntersecting) { state.visible.delete(id); return; }
      state.visible.add(id);
      if (state.rows[id]) { tickRow(state.rows[id], now()); }
    });
  }

  function chip(cue, text) {
    var node = make("span", { className: "chip", "data-cue": cue, text: text });
    var colour = page.cueColour(cue);
    if (colour) { node.style.setProperty("--cue", colour); }  // CSSOM, which the CSP allows, not a style= attribute
    return node;
  }

  function cueChips(counts) {
    return Object.keys(counts || {}).filter(function (cue) { return counts[cue] > 0; }).sort(function (a, b) {
      return (a in CUE_ORDER ? CUE_ORDER[a] : 99) - (b in CUE_ORDER ? CUE_ORDER[b] : 99);
    }).map(function (cue) { return chip(cue, page.cueLabel(cue) + " " + counts[cue]); });
  }

  function line(className, children) { return make("span", { className: "line " + className }, children); }

  function none() { return [make("span", { className: "muted", text: "none" })]; }

  /* Each cell of a row: `key` is what it shows, `draw` its nodes (pushing its ticking times). A cell is redrawn
     only when its key changed, so a diff that moved the tone leaves the hand's buttons (and a click on them) alone. */
  var CELLS = {
    who: { key: function (r) { return [r.agent, r.queue, r.channel]; }, draw: function (r) {
      return [make("strong", { className: "agent", text: r.agent }),
        line("where", [[r.queue || "no queue", r.channel].filter(Boolean).join(" \u00b7 ")])];
    } },
    time: { key: function (r) { return r.started_at; }, draw: function (r, entry, ticks) {
      return [ticking(ticks, r.started_at)];
    } },
    triage: { key: function (r) { return r.triage_level; }, draw: function (r) {
      var level = r.triage_level || 1;
      return [make("span", { className: "triage", "data-level": String(level), text: "Triage " + level }),
        line("muted", [page.triageLabel(level)])];
    } },
    cues: { key: function (r) { return [r.counts, r.abuse, r.escalation]; }, draw: function (r) {
      var flags = [];
      if (r.abuse) { flags.push(make("span", { className: "flag", text: "abusive" })); }
      if (r.escalation) { flags.push(make("span", { className: "flag", text: "asked to escalate" })); }
      var chips = flags.concat(cueChips(r.counts));
      return chips.length ? chips : none();
    } },
    tone: { key: function (r) { return [r.tone && r.tone.label, r.tone && r.tone.trend, r.mode]; }, draw: function (r) {
      var tone = r.tone || { label: "neutral", trend: "steady" };
      return [line("tone", [(TRENDS[tone.trend] || "") + " " + tone.label + ", " + tone.trend]),
        line("mode-line", [make("span", { className: "mode", "data-mode": r.mode || "normal",
          text: "mode: " + (MODES[r.mode] || r.mode || "normal") })])];
    } },
    waiting: { key: function (r) { return r.unacknowledged; }, draw: function (r, entry, ticks) {
      var waiting = (r.unacknowledged || []).map(function (u) {
        return line("waiting-cue", [chip(u.cue, page.cueLabel(u.cue)), " ", ticking(ticks, u.since),
          make("span", { className: "muted", text: " \u00b7 " + u.agent_turns + " agent turn" +
            (u.agent_turns === 1 ? "" : "s") })]);
      });
      return waiting.length ? waiting : none();
    } },
    agent: { key: function (r) { return r.behaviours; }, draw: function (r) {
      var did = r.behaviours || {};
      return [line("did", ["acknowledged " + (did.acknowledging || 0)]), line("did", ["asked " + (did.open_question || 0)]),
        line("did", ["offered " + (did.offering_options || 0)])];
    } },
    hand: { key: function (r, entry) { return [r.hand, r.last_alert, entry.summary]; }, draw: function (r, entry, ticks) {
      var hand = r.hand, parts = [];
      if (hand && !hand.answer) {
        parts.push(line("hand", [make("strong", { text: "Hand raised " }), ticking(ticks, hand.raised_at, " ago")]));
        if (entry.summary) { parts.push(line("summary", [entry.summary])); }
        parts.push(line("answers", [
          make("button", { type: "button", className: "primary", "data-action": "on_my_way", text: ANSWERS.on_my_way }),
          make("button", { type: "button", "data-action": "take_it_from_here", text: ANSWERS.take_it_from_here })]));
      } else if (hand) {
        parts.push(line("hand answered", ["Hand answered: " + (ANSWERS[hand.answer] || hand.answer) +
          (hand.lead ? " \u00b7 " + hand.lead : "")]));
      }
      if (r.last_alert) {
        parts.push(line("last-alert", [make("span", { text: r.last_alert.reason + " \u00b7 " }),
          ticking(ticks, r.last_alert.at, " ago")]));
      }
      return parts.length ? parts : none();
    } }
  };

  function buildRow(id) {
    var node = make("div", { className: "row", role: "row", tabindex: "-1", "data-conversation-id": id });
    var cells = {};
    Object.keys(CELLS).concat(["actions"]).forEach(function (name) {
      cells[name] = node.appendChild(make("span", { className: "cell col-" + name, role: "cell" }));
    });
    cells.actions.appendChild(make("button", { type: "button", className: "whisper-open", "data-action": "whisper",
      text: "Whisper" }));
    return { node: node, cells: cells, data: null, keys: {}, ticks: {}, summary: "" };
  }

  // `redraw` draws every cell again (after a refused answer, to give its buttons back).
  function renderRow(entry, redraw) {
    var r = entry.data;
    if (redraw) { entry.keys = {}; }
    var level = String(r.triage_level || 1), handUp = Boolean(r.hand && !r.hand.answer);
    if (entry.node.getAttribute("data-triage") !== level) { entry.node.setAttribute("data-triage", level); }
    if (entry.node.classList.contains("hand-up") !== handUp) { entry.node.classList.toggle("hand-up", handUp); }
    Object.keys(CELLS).forEach(function (name) {
      var key = JSON.stringify(CELLS[name].key(r, entry));
      if (entry.keys[name] === key) { return; }
      entry.keys[name] = key;
      var ticks = entry.ticks[name] = [];
      fill(entry.cells[name], CELLS[name].draw(r, entry, ticks));
    });
    if (entry.keys.agentName !== r.agent) {
      entry.keys.agentName = r.agent;
      entry.cells.actions.firstChild.setAttribute("aria-label", "Whisper to " + r.agent);
      entry.cells.who.title = r.conversation_id;
    }
  }

  function counted() {
    var n = state.order.length;
    $("count").textContent = n ? "(" + n + ")" : "";
    $("board-empty").hidden = n > 0;
  }

  function noteQueue(queue) {
    if (!queue || state.queues[queue]) { return; }
    state.queues[queue] = true;
    var select = $("queue");
    var before = Array.prototype.filter.call(select.options, function (o) { return o.value && o.value > queue; })[0];
    select.insertBefore(make("option", { value: queue, text: queue }), before || null);
  }

  function dropRow(id) {
    var entry = state.rows[id];
    if (!entry) { return; }
    var at = where(entry);
    if (at >= 0) { state.order.splice(at, 1); }
    if (observer) { observer.unobserve(entry.node); }
    state.visible.delete(id);
    entry.node.remove();
    delete state.rows[id];
  }

  /* One changed row: its nodes are redrawn and, if its rank changed, the one node moved; no other row is touched,
     so a diff costs the same on a floor of twenty as of two thousand. */
  function putRow(data) {
    var id = data.conversation_id;
    noteQueue(data.queue);
    if (state.queue && data.queue !== state.queue) { dropRow(id); return; }  // transferred out of the queue watched
    var entry = state.rows[id];
    if (entry && entry.data.updated_at > data.updated_at) { return; }  // a late diff behind the snapshot shown
    if (entry) {
      var at = where(entry);
      if (at >= 0) { state.order.splice(at, 1); }
    } else {
      entry = state.rows[id] = buildRow(id);
      if (observer) { observer.observe(entry.node); }
    }
    entry.data = data;
    renderRow(entry);
    var to = place(data);
    state.order.splice(to, 0, id);
    var next = to + 1 < state.order.length ? state.rows[state.order[to + 1]].node : null;
    if (entry.node.parentNode !== rowsBox || entry.node.nextSibling !== next) { rowsBox.insertBefore(entry.node, next); }
  }

  // Diffs that arrive while a floor.watch is answered wait for its snapshot: applied after it, each row only if it is
  // newer than the snapshot's (putRow), so neither a change nor the rest of a large snapshot is lost or undone.
  function onDiff(diff) {
    if (state.held) { state.held.push(diff); return; }
    applyDiff(diff);
  }

  function applyDiff(diff) {
    (diff.removed || []).forEach(function (id) {
      dropRow(id);
      Object.keys(state.alerts).forEach(function (key) {
        if (state.alerts[key].data.conversation_id === id) { dropAlert(key); }
      });
      if (state.whisperFor === id) { $("whisper-error").textContent = WORDS.conversation_ended; }
    });
    (diff.rows || []).forEach(putRow);
    counted();
  }

  function replaceBoard(snapshot) {
    if (typeof snapshot.at === "number") { state.offset = snapshot.at - Date.now() / 1000; }
    if (observer) { observer.disconnect(); }
    state.visible.clear();
    var kept = {};  // a raised hand's summary came in floor.hand and is not part of the row
    Object.keys(state.rows).forEach(function (id) { kept[id] = state.rows[id].summary; });
    state.rows = {};
    rowsBox.textContent = "";
    var rows = (snapshot.rows || []).filter(function (r) { return !state.queue || r.queue === state.queue; });
    rows.forEach(function (r) { noteQueue(r.queue); });
    rows.sort(ranks);
    var fragment = document.createDocumentFragment();
    state.order = rows.map(function (r) {
      var entry = state.rows[r.conversation_id] = buildRow(r.conversation_id);
      entry.data = r;
      entry.summary = kept[r.conversation_id] || "";
      renderRow(entry);
      fragment.appendChild(entry.node);
      if (observer) { observer.observe(entry.node); }
      return r.conversation_id;
    });
    rowsBox.appendChild(fragment);
    $("alerts").textContent = "";
    state.alerts = {};
    (snapshot.alerts || []).forEach(function (a) { putAlert(a, false); });
    alertsCounted();
    counted();
  }

  // ---- alerts

  function alertsCounted() { $("alerts-empty").hidden = Object.keys(state.alerts).length > 0; }

  function dropAlert(id) {
    if (!state.alerts[id]) { return; }
    state.alerts[id].node.remove();
    delete state.alerts[id];
    alertsCounted();
  }

  function renderAlert(card) {
    var a = card.data, node = card.node;
    node.classList.toggle("taken", Boolean(a.taken_by));
    var evidence = (a.evidence || []).map(function (e) {
      return make("li", {}, [chip(e.cue, page.cueLabel(e.cue)), " ", (e.words || []).map(function (w) {
        return "\u201c" + w + "\u201d";
      }).join(", ")]);
    });
    var claim = a.taken_by ?
      make("p", { className: "taken-by", text: "Taken by " + a.taken_by.lead + (a.taken_by.at ? " at " + clock(a.taken_by.at) : "") }) :
      make("button", { type: "button", className: "primary claim", text: "I'm on it",
        "aria-label": "I'm on it: " + a.agent + ", " + a.reason });
    fill(node, [
      make("header", {}, [make("h3", { text: a.reason }), make("span", { className: "muted", text: clock(a.at) })]),
      make("p", { className: "who" }, [make("strong", { text: a.agent }),
        " \u00b7 " + [a.queue, a.conversation_id].filter(Boolean).join(" \u00b7 ") + " ",
        make("button", { type: "button", className: "link show", text: "Show on the board" })]),
      a.history ? make("p", { className: "history", text: a.history }) : null,
      evidence.length ? make("ul", { className: "evidence", "aria-label": "The customer's words" }, evidence) :
        make("p", { className: "muted", text: "No words to show for this conversation: counts only." }),
      make("footer", {}, [claim, make("span", { className: "field-error", role: "alert" })])
    ]);
    node.querySelector(".show").addEventListener("click", function () { showRow(a.conversation_id); });
    if (!a.taken_by) { node.querySelector(".claim").addEventListener("click", function () { claimAlert(card); }); }
  }

  // Newest first; an alert already on show (a lead took it) is redrawn where it is.
  function putAlert(alert, fresh) {
    if (state.queue && alert.queue && alert.queue !== state.queue) { return; }
    var card = state.alerts[alert.id];
    if (!card) {
      card = state.alerts[alert.id] = { node: make("article", { className: "alert-card", "data-alert-id": alert.id,
        "data-rule": alert.rule, "data-conversation-id": alert.conversation_id }) };
      var box = $("alerts");
      if (fresh) { box.insertBefore(card.node, box.firstChild); } else { box.appendChild(card.node); }
      while (box.children.length > 200) { dropAlert(box.lastChild.getAttribute("data-alert-id")); }
    }
    card.data = alert;
    renderAlert(card);
    alertsCounted();
  }

  function claimAlert(card) {
    var button = card.node.querySelector(".claim");
    button.disabled = true;
    state.socket.call("alert.claim", { conversation_id: card.data.conversation_id, alert_id: card.data.id })
      .then(function (ack) {
        if (ack.ok) { putAlert(ack.alert || card.data, false); return; }
        button.disabled = false;
        card.node.querySelector("footer .field-error").textContent = words(ack.error);
      });
  }

  function onAlert(alert) {
    var known = Boolean(state.alerts[alert.id]);
    putAlert(alert, true);
    if (!known && !alert.taken_by) { announce("Alert: " + alert.agent + ", " + alert.reason); }
  }

  function showRow(id) {
    var entry = state.rows[id];
    if (!entry) { say(WORDS.unknown_conversation); return; }
    entry.node.scrollIntoView({ block: "center" });
    entry.node.focus({ preventScroll: true });
  }

  // ---- hands and whispers

  function onHand(hand) {
    if (hand.row) { putRow(hand.row); counted(); }
    var entry = state.rows[hand.conversation_id];
    if (entry) {
      if (!hand.row) { entry.data.hand = { raised_at: hand.raised_at, answer: null, lead: null }; }
      entry.summary = hand.summary || "";
      renderRow(entry);
    }
    if (!state.queue || hand.queue === state.queue) { announce(hand.agent + " raised a hand"); }
  }

  function answerHand(id, answer) {
    state.socket.call("hand.answer", { conversation_id: id, answer: answer }).then(function (ack) {
      var entry = state.rows[id];
      if (!ack.ok) {
        say(words(ack.error));
        if (entry) { renderRow(entry, true); }  // its buttons again
        return;
      }
      if (entry && ack.hand) { entry.data.hand = ack.hand; renderRow(entry); }
      say("You answered " + (entry ? entry.data.agent : id) + ": " + ANSWERS[answer] + ".");
    });
  }

  function whisperCount() {
    $("whisper-count").textContent = $("whisper-text").value.length + "/280";
  }

  function openWhisper(id) {
    var entry = state.rows[id];
    state.whisperFor = id;
    $("whisper-title").textContent = "Whisper to " + (entry ? entry.data.agent : id);
    $("whisper-text").value = "";
    $("whisper-error").textContent = "";
    $("whisper-send").disabled = false;
    whisperCount();
    $("whisper").showModal();
    $("whisper-text").focus();
  }

  function sendWhisper(event) {
    event.preventDefault();
    var id = state.whisperFor, text = $("whisper-text").value;
    if (!text.trim()) { $("whisper-error").textContent = WHISPER_WORDS.invalid_payload; return; }
    $("whisper-send").disabled = true;
    state.socket.call("floor.whisper", { conversation_id: id, text: text }).then(function (ack) {
      $("whisper-send").disabled = false;
      if (!ack.ok) { $("whisper-error").textContent = words(ack.error, WHISPER_WORDS); return; }
      $("whisper").close();
      var entry = state.rows[id];
      say("Whisper sent to " + (entry ? entry.data.agent : id) + ".");
    });
  }

  // ---- the connection

  function watch() {
    var seq = ++state.watchSeq;
    state.held = [];
    state.socket.call("floor.watch", { queue: state.queue }).then(function (ack) {
      if (seq !== state.watchSeq) { return; }  // the lead chose another queue meanwhile
      var held = state.held || [];
      state.held = null;
      if (!ack.ok) { sayError(ack.error); return; }
      replaceBoard(ack.snapshot || {});
      held.forEach(applyDiff);
    });
  }

  function connect() {
    if (state.socket) { state.socket.close(); }
    state.socket = null;
    if (!state.token) { sayError({ code: "auth_required" }); return; }
    // Our own origin only: the page's CSP (connect-src 'self') allows no other server.
    var socket = new window.CopilotSocket({ url: window.location.origin, token: state.token, namespace: "/floor" });
    state.socket = socket;
    var mine = function (handler) {
      return function (data) { if (socket === state.socket && data) { handler(data); } };
    };
    socket.on("connect", function () {
      if (socket !== state.socket) { return; }
      setStatus("connected");
      if (state.tokenProblem) { say(""); }
      watch();  // on every reconnect too: a fresh snapshot, then diffs
    });
    socket.on("disconnect", function () { if (socket === state.socket) { setStatus("reconnecting\u2026"); } });
    socket.on("unreachable", function () {
      if (socket === state.socket) { setStatus("cannot reach the server; retrying\u2026"); }
    });
    socket.on("connect_error", function (err) {
      if (socket !== state.socket) { return; }
      setStatus("not connected");
      sayError((err && err.data) || err || {});
    });
    socket.on("floor.diff", mine(onDiff));
    socket.on("floor.alert", mine(onAlert));
    socket.on("floor.hand", mine(onHand));
    setStatus("connecting\u2026");
    socket.open();
  }

  rowsBox.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-action]");
    var row = button && button.closest("[data-conversation-id]");
    if (!row || !state.socket) { return; }
    var id = row.getAttribute("data-conversation-id"), action = button.getAttribute("data-action");
    if (action === "whisper") { openWhisper(id); } else { button.disabled = true; answerHand(id, action); }
  });
  $("whisper-form").addEventListener("submit", sendWhisper);
  $("whisper-text").addEventListener("input", whisperCount);
  $("whisper-cancel").addEventListener("click", function () { $("whisper").close(); });
  $("whisper").addEventListener("close", function () { state.whisperFor = null; });
  $("queue").addEventListener("change", function () {
    state.queue = $("queue").value;
    if (state.socket) { watch(); }
  });
  $("login").addEventListener("submit", function (event) {
    event.preventDefault();
    state.token = $("token").value.trim();
    window.sessionStorage.setItem(KEY, state.token);
    connect();
  });
  window.setInterval(tick, 1000);

  var fragment = new URLSearchParams(window.location.hash.replace(/^#/, ""));
  if (fragment.get("token")) {
    state.token = fragment.get("token");
    window.sessionStorage.setItem(KEY, state.token);
    // Out of the address bar, the history and anything copied from them; the page does not reload.
    window.history.replaceState(null, "", window.location.pathname + window.location.search);
  } else {
    state.token = window.sessionStorage.getItem(KEY) || "";
  }
  $("token").value = state.token;
  counted();
  connect();
})();
