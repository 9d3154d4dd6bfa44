// Load generator for bench/fanout.py: one process, raw `ws` clients for both servers.
//
// Engage is spoken natively (JSON frames, /v1/ws). Socket.IO is spoken as its wire
// protocol (Engine.IO v4 over a WebSocket: "40" connect, "2"/"3" ping/pong,
// 42[id]["event",data] / 43<id>[data] acks), so both servers get the same client
// and the client does the same (small) amount of work per message for both.
//
//   node loadgen.js '<json config>'     config: {mode, server, port, n, ...}
//
// modes: "fanout" (n subscribers of one subject; latency of the body's @T<ms>@ stamp),
//        "ingest" (n clients, `inflight` ops each in flight: like/view/unlike/view),
//        "idle"   (n connections, nothing else).
// stdout: JSON lines. stdin: "go" (ingest: start), "reset", "report", "quit".
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
let received = 0, other = 0, maxLat = 0, errors = 0, acks = 0, closed = 0;
function reset() { hist = new Uint32Array(BUCKETS); received = 0; other = 0; maxLat = 0; errors = 0; acks = 0; }
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
function onStamped(text) {
  const m = STAMP.exec(text);
  if (!m) { other++; return; }
  const lat = now() - Number(m[1]);
  received++;
  if (lat > maxLat) maxLat = lat;
  hist[Math.min(BUCKETS - 1, Math.max(0, Math.floor(lat * 10)))]++;
}

// -- connections -------------------------------------------------------------------------------
const clients = [];
let connecting = 0, connected = 0, failed = 0, nextIndex = 0;

function url(i) {
  if (SIO) return `ws://127.0.0.1:${cfg.port}/socket.io/?EIO=4&transport=websocket`;
  const token = cfg.mode === "ingest" ? `?token=${jwt(cfg.secret, "bench-user-" + i)}` : "";
  return `ws://127.0.0.1:${cfg.port}/v1/ws${token}`;
}

class Client {
  constructor(i) {
    this.i = i;
    this.ref = 0;
    this.ready = false;
    this.ws = new WebSocket(url(i), { perMessageDeflate: false });
    this.ws.on("message", (data, isBinary) => this.onMessage(data.toString()));
    this.ws.on("error", () => {});
    this.ws.on("close", () => { if (this.ready) closed++; else this.fail(); });
    this.ws.on("open", () => { if (!SIO) this.onOpen(); });
  }
  fail() { if (!this.done) { this.done = true; failed++; connecting--; pump(); } }
  ok() { if (!this.done) { this.done = true; this.ready = true; connected++; connecting--; pump(); } }
  onOpen() {  // transport (Engage) or namespace (Socket.IO) is up
    if (cfg.mode === "fanout") this.send("subscribe", cfg.content);
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
      if (text.startsWith("42")) { onStamped(text); return; }
      other++;
      return;
    }
    if (text.startsWith('{"type":"comment"')) { onStamped(text); return; }
    if (text.startsWith('{"type":"ack"') || text.startsWith('{"type":"subscribed"')) {
      this.onReply(true);
      return;
    }
    if (text.startsWith('{"type":"error"')) { this.onReply(false); return; }
    // key order may differ: fall back to a parse
    let msg;
    try { msg = JSON.parse(text); } catch (e) { other++; return; }
    if (msg.type === "comment") onStamped(text);
    else if (msg.type === "ack" || msg.type === "subscribed") this.onReply(true);
    else if (msg.type === "error") this.onReply(false);
    else other++;
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
    this.send(k === 0 ? "like" : k === 2 ? "unlike" : "view", `bench-c${this.i % cfg.contents}`);
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
    out({ event: "ingest", acks, errors, seconds: secs, acks_per_s: acks / secs, closed });
  }, cfg.duration * 1000);
}

readline.createInterface({ input: process.stdin }).on("line", (line) => {
  const cmd = line.trim();
  if (cmd === "go") go();
  else if (cmd === "reset") reset();
  else if (cmd === "report") {
    out({ event: "report", received, other, errors, closed, connected,
          p50: pct(0.5), p99: pct(0.99), max: maxLat });
  } else if (cmd === "quit") {
    for (const c of clients) c.ws.terminate();
    process.exit(0);
  }
}).on("close", () => process.exit(0));

pump();
