/* What the sidebar, the demo and the console share: the legend (cue labels and colours, stages, triage levels)
   that the server renders into the page, making elements, and fetch with its errors as values. */
(function (global) {
  "use strict";
  var doc = global.document;
  var data = doc.getElementById("copilot-legend");
  var legend = data ? JSON.parse(data.textContent) : { cues: [], stages: [], triage: [] };
  var cues = {};
  legend.cues.forEach(function (c) { cues[c.name] = c; });

  function byId(id) { return doc.getElementById(id); }

  /* make("p", {className: "turn", text: "...", "data-cue": "anxiety"}, [child, ...]): any other key is an
     attribute; children are nodes or strings. */
  function make(tag, props, children) {
    var node = doc.createElement(tag);
    Object.keys(props || {}).forEach(function (key) {
      var value = props[key];
      if (value === undefined || value === null) { return; }
      if (key === "className") { node.className = value; } else if (key === "text") { node.textContent = value; } else {
        node.setAttribute(key, value);
      }
    });
    (children || []).forEach(function (child) {
      node.appendChild(typeof child === "string" ? doc.createTextNode(child) : child);
    });
    return node;
  }

  function failure(code, message) { return { ok: false, error: { code: code, message: message } }; }

  /* fetch, answered as a value: `done(body)` for a 2xx reply whose body is not {ok: false}, else `failed(error)`
     with {code, message} (the server's own error, or one for a dropped network or a reply that is not JSON). A
     throw inside `done` reaches `failed` too, so no promise is left without a catch and no failure goes unseen. */
  function request(url, options, done, failed) {
    return global.fetch(url, options).then(function (reply) {
      return reply.json().then(function (body) {
        if (reply.ok && !(body && body.ok === false)) { return body; }
        return body && body.error ? body : failure("http_" + reply.status, "The server answered " + reply.status + ".");
      }, function () {
        return failure("bad_reply", "The server answered " + reply.status + " with something that is not JSON.");
      });
    }, function () {
      return failure("unreachable", "The server cannot be reached. Check the connection, then try again.");
    }).then(function (body) {
      if (body && body.ok === false) { failed(body.error); } else { done(body); }
    }).catch(function (e) {
      if (global.console) { global.console.error(e); }
      try {
        failed({ code: "page_error", message: "This page could not show the answer: " + (e && e.message) });
      } catch (again) { if (global.console) { global.console.error(again); } }
    });
  }

  global.CopilotPage = {
    legend: legend,
    byId: byId,
    make: make,
    request: request,
    cueLabel: function (cue) { return cues[cue] ? cues[cue].label : cue; },
    cueColour: function (cue) { return cues[cue] ? cues[cue].colour : null; },
    triageLabel: function (level) {
      var found = legend.triage.filter(function (t) { return t.level === level; })[0];
      return found ? found.label : "";
    }
  };
})(window);
