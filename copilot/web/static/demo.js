/* The demo CRM: replays a written conversation into the embedded sidebar through its postMessage API. */
(function () {
  "use strict";
  var frame = document.getElementById("sidebar");
  var call = document.getElementById("call");
  var timer = null;
  var script = null;
  var token = null;
  var ready = false;
  var origin = window.location.origin;
  var speed = new URLSearchParams(window.location.search).get("speed");
  if (speed) {
    var select = document.getElementById("speed");
    var option = document.createElement("option");
    option.value = speed; option.textContent = speed + " ms";
    select.appendChild(option);
    select.value = speed;
  }

  function post(message) { frame.contentWindow.postMessage(message, origin); }

  function showRecord(customer) {
    var dl = document.createElement("dl");
    [["Customer", customer.name], ["Account", customer.account], ["Plan", customer.plan], ["Customer since", customer.since]]
      .forEach(function (row) {
        var dt = document.createElement("dt"); dt.textContent = row[0];
        var dd = document.createElement("dd"); dd.textContent = row[1];
        dl.appendChild(dt); dl.appendChild(dd);
      });
    var record = document.getElementById("record");
    record.textContent = "";
    record.appendChild(dl);
  }

  function line(turn) {
    var p = document.createElement("p");
    if (turn.mode) {
      p.className = "mode";
      p.textContent = turn.mode === "verification" ? "Identity verification started" : "Identity confirmed";
    } else {
      p.className = "line";
      var who = document.createElement("b");
      who.textContent = turn.speaker === "agent" ? "Agent:" : "Customer:";
      p.appendChild(who);
      p.appendChild(document.createTextNode(turn.text));
    }
    call.appendChild(p);
  }

  function play() {
    if (!ready || !script || !token) { return; }
    window.clearTimeout(timer);
    call.textContent = "";
    var conversationId = "demo-" + Date.now();
    post({ type: "copilot.connect", token: token });
    post({ type: "copilot.start", conversation_id: conversationId, channel: script.channel, queue: script.queue });
    var i = 0;
    var step = function () {
      if (i >= script.turns.length) { post({ type: "copilot.end" }); return; }
      var turn = script.turns[i];
      var id = "t" + i;
      i += 1;
      if (turn.mode) {
        post({ type: "copilot.mode", mode: turn.mode });
      } else {
        if (turn.partial) { post({ type: "copilot.snippet", snippet_id: id, speaker: turn.speaker, text: turn.partial, final: false }); }
        post({ type: "copilot.snippet", snippet_id: id, speaker: turn.speaker, text: turn.text, final: true });
      }
      line(turn);
      timer = window.setTimeout(step, Number(document.getElementById("speed").value));
    };
    step();
  }

  window.addEventListener("message", function (event) {
    if (event.origin !== origin || !event.data) { return; }
    if (event.data.type === "copilot.ready") { ready = true; play(); }
    if (event.data.type === "copilot.token_expired") {
      // A CRM would fetch a new token for the same agent and send copilot.refresh; each demo token is a new
      // visitor of its own, so the demo reconnects and replays instead.
      fetch("/demo/token", { method: "POST" }).then(function (r) { return r.json(); }).then(function (body) {
        if (body.ok) { token = body.token; play(); }
      });
    }
  });
  document.getElementById("replay").addEventListener("click", play);
  Promise.all([fetch("/demo/conversation").then(function (r) { return r.json(); }),
               fetch("/demo/token", { method: "POST" }).then(function (r) { return r.json(); })])
    .then(function (results) {
      script = results[0];
      token = results[1].token;
      showRecord(script.customer);
      play();
    });
})();
