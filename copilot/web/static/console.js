/* The team-lead console: curate phrasings through the REST API and see usage, resolution and experiments. */
(function () {
  "use strict";
  var page = window.CopilotPage;
  var make = page.make;
  var $ = page.byId;
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

  // One REST call with the lead token: `done(body)` on success, else `failed(error)` (by default, said at the top).
  function api(method, path, body, done, failed) {
    var options = { method: method, headers: { Authorization: "Bearer " + token } };
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    page.request(path, options, done, failed || sayError);
  }

  // A list that could not be read says so in its own place, beside what it would have shown.
  function listFailed(target, what) {
    return function (error) {
      var box = $(target);
      box.textContent = "";
      box.appendChild(make("li", { className: "load-error", text: "Could not load the " + what + ": " + error.message }));
    };
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
      box.appendChild(make("p", { text: "Very close to " + d.id + " (cosine " + d.similarity + "): " + d.text }));
    });
  }

  function open(p) {
    current = p;
    var f = $("editor").elements;
    $("editor").hidden = false;
    $("editor-title").textContent = p ? p.id + " · v" + p.version + " · " + p.status : "New phrasing";
    f.id.value = p ? p.id : ""; f.id.readOnly = Boolean(p);
    f.text.value = p ? p.text : ""; f.cues.value = p ? p.cues.join(", ") : "";
    f.stage.value = p ? p.stage : page.legend.stages[0]; f.channels.value = p ? p.channels.join(", ") : "voice, chat, email";
    f.use_when.value = p ? p.use_when.join("\n") : ""; f.notes.value = p ? p.notes : "";
    ["approve", "retire", "restore"].forEach(function (a) { $(a).disabled = !p; });
    showProblems(null); showDuplicates(null);
    $("versions").textContent = ""; $("audit").textContent = "";
    if (!p) { return; }
    var id = encodeURIComponent(p.id);
    api("GET", "/api/v1/phrasings/" + id + "/versions", undefined, function (r) {
      if (current !== p) { return; }  // another phrasing was opened meanwhile
      r.versions.forEach(function (v) {
        $("versions").appendChild(make("li", {
          text: "v" + v.version + " " + v.status + " by " + v.actor + " at " + new Date(v.at * 1000).toLocaleString() + ": " + v.text }));
      });
    }, listFailed("versions", "versions"));
    // This phrasing's entries only, read by the server: the tenant's first 1,000 may hold none of them.
    api("GET", "/api/v1/audit?limit=1000&phrasing_id=" + id, undefined, function (r) {
      if (current !== p) { return; }
      r.entries.forEach(function (e) {
        $("audit").appendChild(make("li", { text: new Date(e.at * 1000).toLocaleString() + " · " + e.actor + " · " + e.action }));
      });
    }, listFailed("audit", "audit trail"));
  }

  function load() {
    var q = $("q").value.trim();
    var query = new URLSearchParams();
    if (q) { query.set("q", q); }
    if ($("f-status").value) { query.set("status", $("f-status").value); }
    if ($("f-cue").value) { query.set("cue", $("f-cue").value); }
    api("GET", "/api/v1/phrasings?" + query.toString(), undefined, function (r) {
      if (tokenProblem) { say(""); }
      var body = $("phrasings").tBodies[0];
      body.textContent = "";
      r.phrasings.forEach(function (p) {
        var tr = make("tr", { tabindex: "0", "data-phrasing-id": p.id }, [p.text, p.cues.join(", "), p.stage, p.status]
          .map(function (v) { return make("td", { text: v }); }));
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
    var saved = function (r) {
      showProblems(null); showDuplicates(r.near_duplicates);
      say("Saved " + r.phrasing.id + " as version " + r.phrasing.version + " (" + r.phrasing.status + ")");
      open(r.phrasing); showDuplicates(r.near_duplicates); load();
    };
    if (current) {
      api("PATCH", "/api/v1/phrasings/" + encodeURIComponent(current.id), data, saved, showProblems);
    } else {
      api("POST", "/api/v1/phrasings", data, saved, showProblems);
    }
  }

  function validate() {
    api("POST", "/api/v1/validate", formData(), function (r) {
      showProblems(null); showDuplicates(r.near_duplicates);
      say(r.near_duplicates.length ? "Valid, but close to an existing phrasing" : "Valid");
    }, function (error) { showProblems(error); showDuplicates(null); });
  }

  function act(event) {
    var action = event.target.getAttribute("data-action");
    api("POST", "/api/v1/phrasings/" + encodeURIComponent(current.id) + "/" + action, undefined, function (r) {
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
    var legend = make("p", { className: "legend" });
    series.forEach(function (serie) {  // each name beside a key in its line's colour, and its latest value
      var key = make("span", { className: "legend-key" });
      key.style.background = serie.color;
      var last = serie.values.filter(function (v) { return v !== null; }).slice(-1)[0];
      legend.appendChild(make("span", { className: "legend-item" }, [key, serie.name + (last === undefined ? "" : " " + last)]));
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

  // A report cell's number: its rate or mean, or null when the group is below the minimum n ("too few").
  function cellValue(cell) {
    var v = cell.rate !== undefined ? cell.rate : cell.mean;
    return typeof v === "number" ? v : null;
  }

  function round(v, places) { var k = Math.pow(10, places); return Math.round(v * k) / k; }

  /* One bar per report cell, on a scale from 0 to `top`, with its 95% interval and its n; a cell below the
     minimum n draws no bar and says "too few" instead of a number. rows: [{label, cell}]. */
  function cellChart(target, rows, label, top) {
    var box = $(target); box.textContent = "";
    if (!rows.length) { box.textContent = "No data for these days yet."; return; }
    var w = 800, bar = 18, h = rows.length * (bar + 6) + 10, left = 240, span = 340;
    var s = svg(w, h); s.setAttribute("aria-label", label);
    var x = function (v) { return left + Math.max(0, Math.min(1, v / top)) * span; };
    rows.forEach(function (r, i) {
      var y0 = 5 + i * (bar + 6), v = cellValue(r.cell), n = r.cell.n || 0;
      var g = node(s, "g", { "data-n": n, "class": v === null ? "cell too-few" : "cell" });
      node(g, "text", { x: 4, y: y0 + 13 }, r.label.length > 36 ? r.label.slice(0, 35) + "…" : r.label);
      node(g, "rect", { x: left, y: y0, width: span, height: bar, fill: "currentColor", "fill-opacity": 0.06 });
      if (v === null) {
        node(g, "text", { x: left + 8, y: y0 + 13 }, "too few");
      } else {
        node(g, "rect", { x: left, y: y0, width: Math.max(3, x(v) - left), height: bar, fill: "#3f7fc4", "class": "value" });
        if (r.cell.ci95) { node(g, "line", { x1: x(r.cell.ci95[0]), x2: x(r.cell.ci95[1]), y1: y0 + bar / 2, y2: y0 + bar / 2, stroke: "currentColor" }); }
      }
      node(g, "text", { x: left + span + 10, y: y0 + 13 },
        (v === null ? "" : round(v, top > 1 ? 1 : 2) + " · ") + "n=" + n + (r.note ? " · " + r.note : ""));
    });
    box.appendChild(s);
  }

  // A difference test's result in words, or "too few to compare" when a group is below the minimum n.
  function differenceLine(d) {
    if (!d || typeof d.difference !== "number") { return "too few to compare"; }
    return (d.difference > 0 ? "+" : "") + round(d.difference, 2) + " (95% interval " + round(d.ci95[0], 2) +
      " to " + round(d.ci95[1], 2) + "), p = " + round(d.p_value, 3) + " (" + d.test + ")";
  }

  // A chart that could not be read says so where it would have been drawn.
  function chartFailed(target) {
    return function (error) { $(target).textContent = "Could not load this chart: " + error.message; };
  }

  function insights() {
    api("GET", "/api/v1/analytics/conversations", undefined, function (r) {
      if (tokenProblem) { say(""); }
      var seen = {};
      r.cues.forEach(function (d) { Object.keys(d.counts).forEach(function (c) { seen[c] = true; }); });
      lineChart("chart-cues", r.days, page.legend.cues.filter(function (c) { return seen[c.name]; }).map(function (c) {
        return { name: c.label, color: c.colour, values: r.cues.map(function (d) { return d.counts[c.name] || 0; }) };
      }), "Cue mentions per day");
      lineChart("chart-resolution", r.days, [{ name: "resolution rate (95% interval)", color: "#3c9a5a",
        values: r.resolution.map(function (d) { return d.rate; }), ci: r.resolution.map(function (d) { return d.ci95; }) }],
        "Emotional resolution rate per day", 1);
    }, function (error) { sayError(error); chartFailed("chart-cues")(error); chartFailed("chart-resolution")(error); });
    api("GET", "/api/v1/analytics/usage?by=phrasing_id", undefined, function (r) {
      barChart("chart-acceptance", r.rows.filter(function (x) { return x.shown; }).slice(0, 25).map(function (x) {
        return { label: x.phrasing_id, value: x.acceptance_rate || 0, note: x.used + "/" + x.shown };
      }), "Acceptance per phrasing");
    }, chartFailed("chart-acceptance"));
    api("GET", "/api/v1/experiments", undefined, function (r) {
      var box = $("experiments"); box.textContent = "";
      if (!r.experiments.length) { box.textContent = "No experiments defined."; return; }
      r.experiments.forEach(function (e) {
        var holder = make("div", { id: "exp-" + e.id });
        box.appendChild(holder);
        api("GET", "/api/v1/experiments/" + encodeURIComponent(e.id) + "/report", undefined, function (rep) {
          holder.appendChild(make("h3", { text: e.id + " (assigned by " + rep.assign_by + ", " + rep.exposures + " exposures)" }));
          var chart = make("div", { className: "chart", id: "exp-chart-" + e.id });
          holder.appendChild(chart);
          barChart(chart.id, rep.variants.map(function (v) {
            return { label: v.variant + " acceptance", value: v.acceptance_rate || 0, ci: v.acceptance_ci95,
              note: v.used + "/" + v.shown };
          }).concat(rep.variants.map(function (v) {
            return { label: v.variant + " resolution", value: v.resolution_rate || 0, ci: v.resolution_ci95,
              note: v.resolved + "/" + v.negative_cues };
          })), "Experiment " + e.id);
        }, chartFailed(holder.id));
      });
    }, chartFailed("experiments"));
  }

  // The analytics store's reports, each cell with its n; a group below the minimum n says "too few".
  function reportCharts() {
    api("GET", "/api/v1/reports/resolution?by=day", undefined, function (r) {
      cellChart("chart-resolution-days", r.rows.map(function (x) {
        return { label: x.day, cell: { n: x.negative_episodes, rate: x.rate, ci95: x.ci95 } };
      }), "Emotional resolution rate by day", 1);
    }, chartFailed("chart-resolution-days"));
    api("GET", "/api/v1/reports/outcomes?metric=csat&split=acknowledged", undefined, function (r) {
      var words = { acknowledged: "acknowledged", not_acknowledged: "not acknowledged" };
      cellChart("chart-csat-ack", r.rows.map(function (x) {
        return { label: "CSAT when " + (words[x.group] || x.group), cell: x };
      }), "CSAT when the customer's feeling was acknowledged, and when not", 5);
      if (r.rows.length) {
        var versus = r.rows.filter(function (x) { return x.versus; })[0];
        $("chart-csat-ack").appendChild(make("p", { className: "difference",
          text: "Acknowledged minus not acknowledged: " + differenceLine(versus && versus.versus) }));
      }
    }, chartFailed("chart-csat-ack"));
    api("GET", "/api/v1/reports/cqs?by=queue", undefined, function (r) {
      cellChart("chart-cqs", r.rows.map(function (x) { return { label: x.queue || "(no queue)", cell: x }; }),
        "Connection Quality Score by queue", 100);
    }, chartFailed("chart-cqs"));
    api("GET", "/api/v1/reports/phrasings?metric=csat", undefined, function (r) {
      var shown = r.rows.filter(function (x) { return x.shown; }).sort(function (a, b) { return b.shown - a.shown; });
      cellChart("chart-lift", shown.slice(0, 20).map(function (x) {
        var lift = typeof x.lift.difference === "number" ? (x.lift.difference > 0 ? "+" : "") + round(x.lift.difference, 2) : "too few";
        return { label: x.phrasing_id, cell: x.acceptance, note: "CSAT lift " + lift };
      }), "Acceptance and CSAT lift per phrasing", 1);
    }, chartFailed("chart-lift"));
    api("GET", "/api/v1/scorecards?by=agent", undefined, function (r) {
      cellChart("chart-scorecards", r.rows.map(function (x) { return { label: x.agent, cell: x.score }; }),
        "Empathy scorecard by agent", 100);
    }, chartFailed("chart-scorecards"));
  }

  function tab(name) {
    ["library", "insights"].forEach(function (n) {
      $(n).hidden = n !== name;
      $("tab-" + n).setAttribute("aria-selected", String(n === name));
    });
    if (name === "insights") { insights(); reportCharts(); }
  }

  page.legend.cues.forEach(function (c) { $("f-cue").appendChild(make("option", { value: c.name, text: c.label })); });
  page.legend.stages.forEach(function (s) { $("editor").elements.stage.appendChild(make("option", { value: s, text: s })); });
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
