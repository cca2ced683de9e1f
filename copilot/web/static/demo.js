/* The demo CRM: replays a written conversation into the embedded sidebar through its postMessage API. */
(function () {
  "use strict";
  var page = window.CopilotPage;
  var make = page.make;
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
    select.appendChild(make("option", { value: speed, text: speed + " ms" }));
    select.value = speed;
  }

  function problem(error) {
    var box = document.getElementById("problem");
    box.textContent = "The demo could not start: " + error.message;
    box.hidden = false;
  }

  function post(message) { frame.contentWindow.postMessage(message, origin); }

  function showRecord(customer) {
    var dl = make("dl");
    [["Customer", customer.name], ["Account", customer.account], ["Plan", customer.plan], ["Customer since", customer.since]]
      .forEach(function (row) {
        dl.appendChild(make("dt", { text: row[0] }));
        dl.appendChild(make("dd", { text: row[1] }));
      });
    var record = document.getElementById("record");
    record.textContent = "";
    record.appendChild(dl);
  }

  function line(turn) {
    call.appendChild(turn.mode ?
      make("p", { className: "mode", text: turn.mode === "verification" ? "Identity verification started" : "Identity confirmed" }) :
      make("p", { className: "line" }, [make("b", { text: turn.speaker === "agent" ? "Agent:" : "Customer:" }), turn.text]));
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
      page.request("/demo/token", { method: "POST" }, function (body) { token = body.token; play(); }, problem);
    }
  });
  document.getElementById("replay").addEventListener("click", play);
  page.request("/demo/conversation", {}, function (conversation) {
    script = conversation;
    showRecord(script.customer);
    play();
  }, problem);
  page.request("/demo/token", { method: "POST" }, function (body) { token = body.token; play(); }, problem);
})();
