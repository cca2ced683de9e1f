/* A small Socket.IO v4 client (WebSocket transport only) for the /copilot namespace.
   We write our own rather than bundle socket.io-client so the server ships every asset it serves and needs no
   build step. Protocol: Engine.IO v4 packets ("0" open, "2" ping, "3" pong, "4" message) carrying Socket.IO
   packets ("0" connect, "2" event, "3" ack, "4" connect error). */
(function (global) {
  "use strict";

  function CopilotSocket(options) {
    this.url = options.url || global.location.origin;
    this.namespace = options.namespace || "/copilot";
    this.token = options.token;
    this.handlers = {};
    this.acks = {};
    this.nextAck = 1;
    this.queue = [];
    this.connected = false;
    this.closedByUser = false;
    // socket.io-client's option names; a base of 0.5 s doubling to at most 10 s, each delay spread by +-50 %.
    this.reconnectionDelay = options.reconnectionDelay || 500;
    this.reconnectionDelayMax = options.reconnectionDelayMax || 10000;
    this.randomizationFactor = options.randomizationFactor === undefined ? 0.5 : options.randomizationFactor;
    this.attempts = 0;
  }

  /* How long to wait before reconnect attempt number `attempts` (0 first): exponential, capped, and randomised,
     so that every sidebar of a call centre does not come back at the same instant after a server restart. */
  CopilotSocket.prototype.reconnectDelay = function (attempts) {
    var ms = Math.min(this.reconnectionDelay * Math.pow(2, attempts), this.reconnectionDelayMax);
    var spread = ms * this.randomizationFactor;
    return Math.round(ms - spread + Math.random() * 2 * spread);
  };

  CopilotSocket.prototype.on = function (event, handler) {
    (this.handlers[event] = this.handlers[event] || []).push(handler);
    return this;
  };

  CopilotSocket.prototype.fire = function (event, data) {
    (this.handlers[event] || []).forEach(function (h) {
      try { h(data); } catch (e) { if (global.console) { console.error(e); } }
    });
  };

  CopilotSocket.prototype.open = function () {
    var self = this;
    var base = this.url.replace(/^http/, "ws").replace(/\/$/, "");
    var ws = new WebSocket(base + "/socket.io/?EIO=4&transport=websocket");
    this.ws = ws;
    ws.onmessage = function (msg) { self.receive(String(msg.data)); };
    ws.onclose = function () {
      var was = self.connected;
      self.connected = false;
      Object.keys(self.acks).forEach(function (id) {
        self.acks[id]({ ok: false, error: { code: "disconnected", message: "the connection dropped" } });
      });
      self.acks = {};
      if (was) { self.fire("disconnect", {}); }
      // Closed before the namespace answered: the server refused the upgrade (an Origin it does not allow, a
      // proxy in the way) or is down. Say so, rather than "connecting…" for ever.
      if (!was && !self.closedByUser) { self.fire("unreachable", {}); }
      if (!self.closedByUser) {
        setTimeout(function () { self.open(); }, self.reconnectDelay(self.attempts));
        self.attempts += 1;
      }
    };
    return this;
  };

  CopilotSocket.prototype.receive = function (text) {
    var type = text.charAt(0);
    if (type === "0") {  // engine.io open: connect to our namespace with the token
      this.ws.send("40" + this.namespace + "," + JSON.stringify({ token: this.token }));
    } else if (type === "2") {
      this.ws.send("3");
    } else if (type === "4") {
      this.packet(text.slice(1));
    }
  };

  CopilotSocket.prototype.packet = function (text) {
    var kind = text.charAt(0);
    var rest = text.slice(1);
    if (rest.indexOf(this.namespace + ",") === 0) {
      rest = rest.slice(this.namespace.length + 1);
    } else if (rest.indexOf(this.namespace) === 0) {
      rest = rest.slice(this.namespace.length);
    }
    var idMatch = /^(\d+)/.exec(rest);
    var id = null;
    if (idMatch && kind !== "0" && kind !== "4") {
      id = idMatch[1];
      rest = rest.slice(id.length);
    }
    var data = rest ? JSON.parse(rest) : null;
    if (kind === "0") {
      this.connected = true;
      this.attempts = 0;
      this.fire("connect", data);
      var pending = this.queue;
      this.queue = [];
      for (var i = 0; i < pending.length; i++) { this.send.apply(this, pending[i]); }
    } else if (kind === "4") {
      this.closedByUser = true;
      this.fire("connect_error", data);
      this.ws.close();
    } else if (kind === "2") {
      this.fire(data[0], data[1]);
    } else if (kind === "3" && this.acks[id]) {
      var ack = this.acks[id];
      delete this.acks[id];
      ack(data[0]);
    }
  };

  CopilotSocket.prototype.send = function (event, payload, ack) {
    if (!this.connected) {
      this.queue.push([event, payload, ack]);
      return;
    }
    var id = "";
    if (ack) {
      id = String(this.nextAck++);
      this.acks[id] = ack;
    }
    this.ws.send("42" + this.namespace + "," + id + JSON.stringify([event, payload]));
  };

  CopilotSocket.prototype.call = function (event, payload) {
    var self = this;
    return new Promise(function (resolve) { self.send(event, payload, resolve); });
  };

  CopilotSocket.prototype.close = function () {
    this.closedByUser = true;
    if (this.ws) { this.ws.close(); }
  };

  global.CopilotSocket = CopilotSocket;
})(window);
