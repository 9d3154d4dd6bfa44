// Load generator for bench/fanout.py: one process, raw `ws` clients for both servers.
//
// Engage is spoken natively (JSON frames, /v1/ws). Socket.IO is spoken as its wire
// protocol (Engine.IO v4 over a WebSocket: "40" connect, "2"/"3" ping/pong,
// 42[id]["event",data] / 43<id>[data] acks), so both servers get the same client
// and the client does the same (small) amount of work per message for both.
//
//   node loadgen.js '<json config>'     config: {mode, server, port, n, ...}
//
// modes: "fanout" (n subscribers of one subject; latency of the body's @T<ms>@ stamp;
//                  Engage: each subscriber checks it gets every event once and in
//                  order, by the frames' offsets. Socket.IO frames have no offset
//                  and concurrent publishes may be emitted in either order: only
//                  the total count is checked there),
//        "storm"  (Engage: fanout, then on "drop" every client goes away, and on
//                  "reconnect <offset>" every one comes back with `since` and must
//                  catch up exactly, up to <offset>; reports the seconds it took),
//        "ingest" (n clients, `inflight` ops each in flight: like/view/unlike/view),
//        "idle"   (n connections, nothing else).
// stdout: JSON lines. stdin: "go" (ingest: start), "reset", "report", "drop",
// "reconnect <offset>", "quit".
"use strict";
const WebSocket = require("ws");
const crypto = require("crypto");
const readline = require("readline");

const cfg = JSON.parse(process.argv[2]);
const SIO = cfg.server === "sio";
const now = () => performance.timeOrigin + performance.now();
const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

function b64url(buf) {
  return Buffer.from(buf).toString("base64").replace(/=+$/, "").replace(/\+/g, "-").replace(/\//g, "_");
}
function jwt(secret, sub) {
  const head = b64url(JSON.stringify({ alg: "HS256", typ: "JWT" }));
  const body = b64url(JSON.stringify({ sub, iat: Math.floor(Date.now() / 1000),
                                       exp: Math.floor(Date.now() / 1000) + 7200 }));
  const sig = b64url(crypto.createHmac("sha256", secret).update(head + "." + body).digest());
  return `${head}.${body}.${sig}`;
}

// -- latency histogram: 0.1 ms buckets up to 60 s ------------------------------------------
const BUCKETS = 600000;
let hist = new Uint32Array(BUCKETS);
let received = 0, other = 0, maxLat = 0, errors = 0, acks = 0, closed = 0, disorder = 0;
let firstError = null;  // the text of the first error frame, for the report
function reset() {
  hist = new Uint32Array(BUCKETS); received = 0; other = 0; maxLat = 0; errors = 0; acks = 0;
  disorder = 0;
}
function pct(p) {
  const target = Math.ceil(p * received);
  let seen = 0;
  for (let i = 0; i < BUCKETS; i++) {
    seen += hist[i];
    if (seen >= target && seen > 0) return (i + 1) / 10;
  }
  return null;
}
const STAMP = /@T(\d+(?:\.\d+)?)@/;
const OFFSET = /"offset":(\d+)/;
function onStamped(text, client) {
  const m = STAMP.exec(text);
  if (!m) { other++; return; }
  // Exactly once and in order, per subscriber: each event follows the last.
  const n = SIO ? null : OFFSET.exec(text);
  if (n) {
    const k = Number(n[1]);
    if (client.last !== null && k !== client.last + 1) disorder++;
    client.last = k;
  }
  const lat = now() - Number(m[1]);
  received++;
  if (lat > maxLat) maxLat = lat;
  hist[Math.min(BUCKETS - 1, Math.max(0, Math.floor(lat * 10)))]++;
}

// -- connections -------------------------------------------------------------------------------
const clients = [];
let connecting = 0, connected = 0, failed = 0, nextIndex = 0;

// Client i of this process is client cfg.first + i of the run (user names, content ids).
function url(i) {
  i += cfg.first || 0;
  if (SIO) return `ws://127.0.0.1:${cfg.port}/socket.io/?EIO=4&transport=websocket`;
  const token = cfg.mode === "ingest" ? `?token=${jwt(cfg.secret, "bench-user-" + i)}` : "";
  return `ws://127.0.0.1:${cfg.port}/v1/ws${token}`;
}

class Client {
  constructor(i) {
    this.i = i;
    this.ref = 0;
    this.ready = false;
    this.last = null;    // offset of the last event (Engage)
    this.epoch = null;
    this.open();
  }
  open() {
    const ws = this.ws = new WebSocket(url(this.i), { perMessageDeflate: false });
    ws.on("message", (data, isBinary) => this.onMessage(data.toString()));
    ws.on("error", () => {});
    ws.on("close", () => {
      if (ws !== this.ws || this.dropped) return;  // an earlier socket, or a drop we asked for
      if (this.ready) closed++; else this.fail();
    });
    ws.on("open", () => { if (!SIO) this.onOpen(); });
  }
  fail() { if (!this.done) { this.done = true; failed++; connecting--; pump(); } }
  ok() { if (!this.done) { this.done = true; this.ready = true; connected++; connecting--; pump(); } }
  onOpen() {  // transport (Engage) or namespace (Socket.IO) is up
    if (storm.active) {
      this.ws.send(JSON.stringify({ op: "subscribe", content: cfg.content, ref: ++this.ref,
                                    since: { offset: this.last, epoch: this.epoch } }));
    } else if (cfg.mode === "fanout" || cfg.mode === "storm") this.send("subscribe", cfg.content);
    else this.ok();
  }
  send(op, content) {
    const ref = ++this.ref;
    if (SIO) {
      const arg = op === "subscribe" ? JSON.stringify(["join", content])
                                     : JSON.stringify([op, { content }]);
      this.ws.send(`42${ref}${arg}`);
    } else {
      this.ws.send(JSON.stringify({ op, content, ref }));
    }
  }
  onMessage(text) {
    if (SIO) {
      if (text === "2") { this.ws.send("3"); return; }
      if (text.startsWith("0{")) { this.ws.send("40"); return; }
      if (text.startsWith("40")) { this.onOpen(); return; }
      if (text.startsWith("43")) { this.onReply(!text.includes('"error"')); return; }
      if (text.startsWith("42")) { onStamped(text, this); return; }
      other++;
      return;
    }
    if (text.startsWith('{"type":"comment"')) { onStamped(text, this); storm.progress(this); return; }
    if (text.startsWith('{"type":"subscribed"')) { this.onSubscribed(JSON.parse(text)); return; }
    if (text.startsWith('{"type":"ack"')) { this.onReply(true); return; }
    if (text.startsWith('{"type":"error"')) {
      if (firstError === null) firstError = text.slice(0, 300);
      this.onReply(false);
      return;
    }
    // key order may differ: fall back to a parse
    let msg;
    try { msg = JSON.parse(text); } catch (e) { other++; return; }
    if (msg.type === "comment") { onStamped(text, this); storm.progress(this); }
    else if (msg.type === "subscribed") this.onSubscribed(msg);
    else if (msg.type === "ack") this.onReply(true);
    else if (msg.type === "error") this.onReply(false);
    else other++;
  }
  onSubscribed(msg) {
    if (storm.active) { storm.subscribed(this, msg); return; }
    this.last = msg.offset;
    this.epoch = msg.epoch;
    this.onReply(true);
  }
  onReply(good) {
    if (!this.ready) { if (good) this.ok(); else this.fail(); return; }
    if (cfg.mode !== "ingest") return;
    if (good) { if (running) acks++; } else if (running) errors++;
    if (running) this.next();
    else this.inflight--;
  }
  next() {
    const k = this.ref % 4;
    this.send(k === 0 ? "like" : k === 2 ? "unlike" : "view",
              `bench-c${(this.i + (cfg.first || 0)) % cfg.contents}`);
  }
}

function pump() {
  while (connecting < (cfg.parallel || 200) && nextIndex < cfg.n) {
    connecting++;
    clients.push(new Client(nextIndex++));
  }
  if (connected + failed === cfg.n && !pump.reported) {
    pump.reported = true;
    out({ event: "ready", connected, failed });
  }
}

// -- reconnect storm (Engage) -----------------------------------------------------------------
const storm = {
  active: false, target: 0, t0: 0, done: 0, unrecovered: 0, next: 0, opening: 0,
  drop() {
    for (const c of clients) { c.dropped = true; c.ws.terminate(); }
  },
  reconnect(target) {
    Object.assign(this, { active: true, target, t0: now(), done: 0, unrecovered: 0, next: 0,
                          opening: 0 });
    disorder = 0;
    this.pump();
  },
  pump() {  // the same parallelism as the first connect
    while (this.opening < (cfg.parallel || 200) && this.next < clients.length) {
      const c = clients[this.next++];
      this.opening++;
      c.dropped = false;
      c.finished = false;
      c.open();
    }
  },
  subscribed(c, msg) {
    this.opening--;
    if (!msg.recovered) { this.unrecovered++; c.last = msg.offset; c.epoch = msg.epoch; }
    this.pump();
    this.progress(c);
  },
  progress(c) {
    if (!this.active || c.finished || c.last !== this.target) return;
    c.finished = true;
    if (++this.done === clients.length) {
      this.active = false;
      out({ event: "storm", seconds: (now() - this.t0) / 1000, clients: clients.length,
            unrecovered: this.unrecovered, disorder, received });
    }
  },
};

let running = false;
function go() {
  reset();
  running = true;
  const t0 = now();
  for (const c of clients) {
    if (!c.ready) continue;
    c.inflight = cfg.inflight;
    // stagger the first sends a little so the refs don't all line up
    for (let j = 0; j < cfg.inflight; j++) c.next();
  }
  setTimeout(() => {
    running = false;
    const secs = (now() - t0) / 1000;
    out({ event: "ingest", acks, errors, seconds: secs, acks_per_s: acks / secs, closed,
          first_error: firstError });
  }, cfg.duration * 1000);
}

readline.createInterface({ input: process.stdin }).on("line", (line) => {
  const cmd = line.trim();
  if (cmd === "go") go();
  else if (cmd === "reset") reset();
  else if (cmd === "drop") { storm.drop(); out({ event: "dropped" }); }
  else if (cmd.startsWith("reconnect ")) storm.reconnect(Number(cmd.split(" ")[1]));
  else if (cmd === "report") {
    out({ event: "report", received, other, errors, closed, connected, disorder,
          p50: pct(0.5), p99: pct(0.99), max: maxLat });
  } else if (cmd === "quit") {
    for (const c of clients) c.ws.terminate();
    process.exit(0);
  }
}).on("close", () => process.exit(0));

pump();
