/* The team-lead console: curate phrasings through the REST API and see usage, resolution and experiments. */
(function () {
  "use strict";
  var CUES = ["frustration", "disappointment", "confusion", "anxiety", "sadness", "gratitude", "repeat_contact",
    "escalation_request", "churn_risk", "urgency", "abuse", "crisis"];
  var STAGES = ["check-in", "investigate", "options", "close-the-loop", "after-verification", "agent-protection"];
  var COLORS = ["#c0563a", "#8a5bb0", "#b69a1c", "#3f7fc4", "#6b7280", "#3c9a5a", "#a8743a", "#c24f7a", "#d0503c",
    "#d88a2b", "#6f55b8", "#b03030"];
  var $ = function (id) { return document.getElementById(id); };
  var token = window.sessionStorage.getItem("copilot-lead-token") || "";
  var current = null;
  var tokenProblem = false;  // the message on show says the token was refused: a token that works clears it
  var HOW = " Paste a lead token: python -m copilot token --role lead --tenant TENANT --agent YOU.";
  var PLAIN = {
    auth_required: "Paste a lead token to start." + HOW,
    invalid_token: "That token was not accepted: this server did not issue it, or it was cut short." + HOW,
    token_expired: "That token has expired." + HOW,
    forbidden: "That token may not do this: the console needs a lead (or admin) token." + HOW
  };

  function say(text) { $("message").textContent = text; tokenProblem = false; }

  // The server's message, or plain words (and what to do) when it is the token that was refused.
  function sayError(error) {
    say(PLAIN[error.code] || error.message);
    tokenProblem = Boolean(PLAIN[error.code]);
  }

  function api(method, path, body, raw) {
    var options = { method: method, headers: { Authorization: "Bearer " + token } };
    if (body !== undefined) {
      options.headers["Content-Type"] = raw ? "application/yaml" : "application/json";
      options.body = raw ? body : JSON.stringify(body);
    }
    return fetch(path, options).then(function (r) { return r.json(); });
  }

  function list(value) { return value.split(",").map(function (s) { return s.trim(); }).filter(Boolean); }

  function formData() {
    var f = $("editor").elements;
    return { id: f.id.value.trim(), text: f.text.value, cues: list(f.cues.value), stage: f.stage.value,
      channels: list(f.channels.value), notes: f.notes.value,
      use_when: f.use_when.value.split("\n").map(function (s) { return s.trim(); }).filter(Boolean) };
  }

  function showProblems(error) {
    document.querySelectorAll(".field-error").forEach(function (p) { p.textContent = ""; });
    if (!error) { return; }
    (error.details || []).forEach(function (d) {
      var target = document.querySelector('.field-error[data-field="' + d.field + '"]');
      if (target) { target.textContent = (target.textContent ? target.textContent + " " : "") + d.message; }
    });
    say(error.message);
  }

  function showDuplicates(items) {
    var box = $("duplicates");
    box.textContent = "";
    box.hidden = !items || !items.length;
    (items || []).forEach(function (d) {
      var p = document.createElement("p");
      p.textContent = "Very close to " + d.id + " (cosine " + d.similarity + "): " + d.text;
      box.appendChild(p);
    });
  }

  function open(p) {
    current = p;
    var f = $("editor").elements;
    $("editor").hidden = false;
    $("editor-title").textContent = p ? p.id + " · v" + p.version + " · " + p.status : "New phrasing";
    f.id.value = p ? p.id : ""; f.id.readOnly = Boolean(p);
    f.text.value = p ? p.text : ""; f.cues.value = p ? p.cues.join(", ") : "";
    f.stage.value = p ? p.stage : "check-in"; f.channels.value = p ? p.channels.join(", ") : "voice, chat, email";
    f.use_when.value = p ? p.use_when.join("\n") : ""; f.notes.value = p ? p.notes : "";
    ["approve", "retire", "restore"].forEach(function (a) { $(a).disabled = !p; });
    showProblems(null); showDuplicates(null);
    $("versions").textContent = ""; $("audit").textContent = "";
    if (!p) { return; }
    api("GET", "/api/v1/phrasings/" + p.id + "/versions").then(function (r) {
      (r.versions || []).forEach(function (v) {
        var li = document.createElement("li");
        li.textContent = "v" + v.version + " " + v.status + " by " + v.actor + " at " + new Date(v.at * 1000).toLocaleString() + ": " + v.text;
        $("versions").appendChild(li);
      });
    });
    api("GET", "/api/v1/audit?limit=1000").then(function (r) {
      (r.entries || []).filter(function (e) { return e.phrasing_id === p.id; }).forEach(function (e) {
        var li = document.createElement("li");
        li.textContent = new Date(e.at * 1000).toLocaleString() + " · " + e.actor + " · " + e.action;
        $("audit").appendChild(li);
      });
    });
  }

  function load() {
    var q = $("q").value.trim();
    var query = new URLSearchParams();
    if (q) { query.set("q", q); }
    if ($("f-status").value) { query.set("status", $("f-status").value); }
    if ($("f-cue").value) { query.set("cue", $("f-cue").value); }
    api("GET", "/api/v1/phrasings?" + query.toString()).then(function (r) {
      if (!r.ok) { sayError(r.error); return; }
      if (tokenProblem) { say(""); }
      var body = $("phrasings").tBodies[0];
      body.textContent = "";
      r.phrasings.forEach(function (p) {
        var tr = document.createElement("tr");
        tr.tabIndex = 0;
        tr.setAttribute("data-phrasing-id", p.id);
        [p.text, p.cues.join(", "), p.stage, p.status].forEach(function (v) {
          var td = document.createElement("td"); td.textContent = v; tr.appendChild(td);
        });
        tr.addEventListener("click", function () { open(p); });
        tr.addEventListener("keydown", function (e) { if (e.key === "Enter") { open(p); } });
        body.appendChild(tr);
      });
      $("count").textContent = r.count + " phrasings";  // beside the list: #message keeps the last action's outcome
    });
  }

  function save(event) {
    event.preventDefault();
    var data = formData();
    var call = current ? api("PATCH", "/api/v1/phrasings/" + current.id, data) : api("POST", "/api/v1/phrasings", data);
    call.then(function (r) {
      if (!r.ok) { showProblems(r.error); return; }
      showProblems(null); showDuplicates(r.near_duplicates);
      say("Saved " + r.phrasing.id + " as version " + r.phrasing.version + " (" + r.phrasing.status + ")");
      open(r.phrasing); showDuplicates(r.near_duplicates); load();
    });
  }

  function validate() {
    api("POST", "/api/v1/validate", formData()).then(function (r) {
      if (!r.ok) { showProblems(r.error); showDuplicates(null); return; }
      showProblems(null); showDuplicates(r.near_duplicates);
      say(r.near_duplicates.length ? "Valid, but close to an existing phrasing" : "Valid");
    });
  }

  function act(event) {
    var action = event.target.getAttribute("data-action");
    api("POST", "/api/v1/phrasings/" + current.id + "/" + action).then(function (r) {
      if (!r.ok) { sayError(r.error); return; }
      say(r.phrasing.id + " is now " + r.phrasing.status);
      open(r.phrasing); load();
    });
  }

  function svg(width, height) {
    var s = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    s.setAttribute("viewBox", "0 0 " + width + " " + height);
    s.setAttribute("role", "img");
    return s;
  }

  function node(parent, tag, attrs, text) {
    var n = document.createElementNS("http://www.w3.org/2000/svg", tag);
    Object.keys(attrs).forEach(function (k) { n.setAttribute(k, attrs[k]); });
    if (text !== undefined) { n.textContent = text; }
    parent.appendChild(n);
    return n;
  }

  function lineChart(target, days, series, label, max) {
    var box = $(target); box.textContent = "";
    if (!days.length) { box.textContent = "No conversations yet."; return; }
    var w = 720, h = 220, pad = 32;
    var s = svg(w, h); s.setAttribute("aria-label", label);
    var top = max || Math.max(1, Math.max.apply(null, series.map(function (x) { return Math.max.apply(null, x.values.map(function (v) { return v || 0; })); })));
    var x = function (i) { return pad + (days.length > 1 ? (i * (w - 2 * pad)) / (days.length - 1) : (w - 2 * pad) / 2); };
    var y = function (v) { return h - pad - (v / top) * (h - 2 * pad); };
    node(s, "line", { x1: pad, y1: h - pad, x2: w - pad, y2: h - pad, stroke: "currentColor", "stroke-opacity": 0.3 });
    node(s, "text", { x: 2, y: y(top) + 4 }, String(Math.round(top * 100) / 100));
    days.forEach(function (d, i) { node(s, "text", { x: x(i) - 20, y: h - 8 }, d.slice(5)); });
    series.forEach(function (serie) {
      var pts = serie.values.map(function (v, i) { return v === null ? null : x(i) + "," + y(v); }).filter(Boolean);
      node(s, "polyline", { points: pts.join(" "), fill: "none", stroke: serie.color, "stroke-width": 2 });
      // A dot on each day: one day of data is a line of one point, which draws nothing by itself.
      serie.values.forEach(function (v, i) {
        if (v !== null) { node(s, "circle", { cx: x(i), cy: y(v), r: 4, fill: serie.color }).setAttribute("data-day", days[i]); }
      });
      (serie.ci || []).forEach(function (ci, i) {
        if (ci && serie.values[i] !== null) { node(s, "line", { x1: x(i), x2: x(i), y1: y(ci[0]), y2: y(ci[1]), stroke: serie.color, "stroke-opacity": 0.5 }); }
      });
    });
    var any = series.some(function (serie) { return serie.values.some(function (v) { return v !== null; }); });
    if (!any) { node(s, "text", { x: w / 2 - 80, y: h / 2 }, "No data for these days yet."); }
    box.appendChild(s);
    var legend = document.createElement("p");
    legend.className = "legend";
    series.forEach(function (serie) {  // each name beside a key in its line's colour, and its latest value
      var item = document.createElement("span");
      item.className = "legend-item";
      var key = document.createElement("span");
      key.className = "legend-key";
      key.style.background = serie.color;
      var last = serie.values.filter(function (v) { return v !== null; }).slice(-1)[0];
      item.appendChild(key);
      item.appendChild(document.createTextNode(serie.name + (last === undefined ? "" : " " + last)));
      legend.appendChild(item);
    });
    box.appendChild(legend);
  }

  function barChart(target, rows, label) {
    var box = $(target); box.textContent = "";
    if (!rows.length) { box.textContent = "Nothing shown yet."; return; }
    var w = 720, bar = 18, h = rows.length * (bar + 6) + 10;
    var s = svg(w, h); s.setAttribute("aria-label", label);
    rows.forEach(function (r, i) {
      var y0 = 5 + i * (bar + 6);
      node(s, "text", { x: 4, y: y0 + 13 }, r.label);
      node(s, "rect", { x: 260, y: y0, width: Math.max(3, r.value * 380), height: bar, fill: "#3f7fc4" });
      if (r.ci) { node(s, "line", { x1: 260 + r.ci[0] * 380, x2: 260 + r.ci[1] * 380, y1: y0 + bar / 2, y2: y0 + bar / 2, stroke: "currentColor" }); }
      node(s, "text", { x: 650, y: y0 + 13 }, r.note);
    });
    box.appendChild(s);
  }

  function insights() {
    api("GET", "/api/v1/analytics/conversations").then(function (r) {
      if (!r.ok) { sayError(r.error); return; }
      if (tokenProblem) { say(""); }
      var seen = {};
      r.cues.forEach(function (d) { Object.keys(d.counts).forEach(function (c) { seen[c] = true; }); });
      lineChart("chart-cues", r.days, CUES.filter(function (c) { return seen[c]; }).map(function (c) {
        return { name: c, color: COLORS[CUES.indexOf(c)], values: r.cues.map(function (d) { return d.counts[c] || 0; }) };
      }), "Cue mentions per day");
      lineChart("chart-resolution", r.days, [{ name: "resolution rate (95% interval)", color: "#3c9a5a",
        values: r.resolution.map(function (d) { return d.rate; }), ci: r.resolution.map(function (d) { return d.ci95; }) }],
        "Emotional resolution rate per day", 1);
    });
    api("GET", "/api/v1/analytics/usage?by=phrasing_id").then(function (r) {
      if (!r.ok) { return; }
      barChart("chart-acceptance", r.rows.filter(function (x) { return x.shown; }).slice(0, 25).map(function (x) {
        return { label: x.phrasing_id, value: x.acceptance_rate || 0, note: x.used + "/" + x.shown };
      }), "Acceptance per phrasing");
    });
    api("GET", "/api/v1/experiments").then(function (r) {
      var box = $("experiments"); box.textContent = "";
      if (!r.ok || !r.experiments.length) { box.textContent = "No experiments defined."; return; }
      r.experiments.forEach(function (e) {
        var holder = document.createElement("div");
        holder.id = "exp-" + e.id;
        box.appendChild(holder);
        api("GET", "/api/v1/experiments/" + e.id + "/report").then(function (rep) {
          var title = document.createElement("h3");
          title.textContent = e.id + " (assigned by " + rep.assign_by + ", " + rep.exposures + " exposures)";
          holder.appendChild(title);
          var chart = document.createElement("div"); chart.className = "chart"; chart.id = "exp-chart-" + e.id;
          holder.appendChild(chart);
          barChart(chart.id, rep.variants.map(function (v) {
            return { label: v.variant + " acceptance", value: v.acceptance_rate || 0, ci: v.acceptance_ci95,
              note: v.used + "/" + v.shown };
          }).concat(rep.variants.map(function (v) {
            return { label: v.variant + " resolution", value: v.resolution_rate || 0, ci: v.resolution_ci95,
              note: v.resolved + "/" + v.negative_cues };
          })), "Experiment " + e.id);
        });
      });
    });
  }

  function tab(name) {
    ["library", "insights"].forEach(function (n) {
      $(n).hidden = n !== name;
      $("tab-" + n).setAttribute("aria-selected", String(n === name));
    });
    if (name === "insights") { insights(); }
  }

  CUES.forEach(function (c) { var o = document.createElement("option"); o.value = o.textContent = c; $("f-cue").appendChild(o); });
  STAGES.forEach(function (s) { var o = document.createElement("option"); o.value = o.textContent = s; $("editor").elements.stage.appendChild(o); });
  $("token").value = token;
  $("login").addEventListener("submit", function (e) {
    e.preventDefault();
    token = $("token").value.trim();
    window.sessionStorage.setItem("copilot-lead-token", token);
    load();
  });
  $("search").addEventListener("submit", function (e) { e.preventDefault(); load(); });
  $("new").addEventListener("click", function () { open(null); });
  $("editor").addEventListener("submit", save);
  $("validate").addEventListener("click", validate);
  ["approve", "retire", "restore"].forEach(function (a) { $(a).addEventListener("click", act); });
  $("tab-library").addEventListener("click", function () { tab("library"); });
  $("tab-insights").addEventListener("click", function () { tab("insights"); });
  if (token) { load(); }
})();
