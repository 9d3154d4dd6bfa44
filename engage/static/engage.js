// Engage browser client: live counts, comments and presence over one WebSocket.
// Dependency-free ES module. Reconnects with exponential backoff and full
// jitter, and resumes each subscription from its last offset (catch-up).
//
//   import { EngageClient } from "/static/engage.js";
//   const client = new EngageClient({ url: "/v1/ws", token });
//   client.subscribe("post-1", {
//     subscribed(f) {}, counts(f) {}, comment(f) {}, comment_updated(f) {},
//     comment_deleted(f) {}, reload() { /* gap too large: refetch over HTTP */ },
//   });
//   await client.like("post-1");

const BACKOFF_BASE_MS = 500;
const BACKOFF_MAX_MS = 30000;
const OP_TIMEOUT_MS = 10000;

export class EngageError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

export class EngageClient {
  /**
   * @param {object} options
   * @param {string} [options.url] WebSocket URL or path (default "/v1/ws").
   * @param {string} [options.token] bearer token (JWT); omit for anonymous.
   * @param {function} [options.onStatus] called with "connecting" | "open" | "closed".
   */
  constructor({ url = "/v1/ws", token = null, onStatus = () => {} } = {}) {
    this.url = absoluteWsUrl(url);
    this.token = token;
    this.onStatus = onStatus;
    this.subs = new Map(); // content -> {handlers, offset, epoch}
    this.pending = new Map(); // ref -> {resolve, reject, timer, sent}
    this.nextRef = 1;
    this.attempt = 0;
    this.ws = null;
    this.closed = false;
    this.queue = []; // {ref, text}: frames to send once connected
    this._connect();
  }

  /** Subscribe to a content item; handlers are keyed by frame type. */
  subscribe(content, handlers = {}) {
    const sub = this.subs.get(content) || { handlers, offset: null, epoch: null };
    sub.handlers = handlers;
    this.subs.set(content, sub);
    if (this._isOpen()) this._sendSubscribe(content, sub);
  }

  unsubscribe(content) {
    this.subs.delete(content);
    return this._op({ op: "unsubscribe", content });
  }

  view(content) { return this._op({ op: "view", content }); }
  like(content) { return this._op({ op: "like", content }); }
  unlike(content) { return this._op({ op: "unlike", content }); }
  applaud(content, count = 1) { return this._op({ op: "applaud", content, count }); }
  comment(content, body, parent = null) {
    const frame = { op: "comment", content, body };
    if (parent) frame.parent = parent;
    return this._op(frame);
  }

  /** Replace the token (e.g. before it expires); re-authenticates at once. */
  setToken(token) {
    this.token = token;
    if (this._isOpen()) return this._op({ op: "auth", token });
    return Promise.resolve(null);
  }

  close() {
    this.closed = true;
    if (this.ws && this.ws.readyState !== WebSocket.CLOSED) this.ws.close(1000, "client closed");
    else this._failPending(); // between attempts: no onclose will come
  }

  // -- internals ----------------------------------------------------------

  _isOpen() { return this.ws && this.ws.readyState === WebSocket.OPEN; }

  _connect() {
    if (this.closed) return;
    this.onStatus("connecting");
    const url = this.token ? `${this.url}${this.url.includes("?") ? "&" : "?"}token=${encodeURIComponent(this.token)}` : this.url;
    const ws = new WebSocket(url);
    this.ws = ws;
    ws.onopen = () => {
      this.attempt = 0;
      this.onStatus("open");
      for (const [content, sub] of this.subs) this._sendSubscribe(content, sub);
      const queued = this.queue.splice(0);
      for (const { ref, text } of queued) {
        ws.send(text);
        const p = ref !== null && this.pending.get(ref);
        if (p) p.sent = true;
      }
    };
    ws.onmessage = (event) => {
      let frame;
      try { frame = JSON.parse(event.data); } catch { return; }
      this._dispatch(frame);
    };
    ws.onclose = () => {
      this.onStatus("closed");
      // Only ops that went out on this socket are lost with it. Ops still in
      // the queue were never sent: they stay pending and go out on the next
      // connection (rejecting them here and sending them later would tell
      // the caller "failed" for an op that then happens).
      this._failPending();
      if (this.closed) return;
      // Full jitter: spread reconnects so a restarted server is not stampeded.
      const cap = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** this.attempt);
      this.attempt += 1;
      setTimeout(() => this._connect(), Math.random() * cap);
    };
  }

  /** Reject the ops lost with the socket (all of them once closed for good). */
  _failPending() {
    for (const [ref, p] of this.pending) {
      if (!p.sent && !this.closed) continue;
      this.pending.delete(ref);
      clearTimeout(p.timer);
      p.reject(new EngageError("disconnected", "connection closed before a reply"));
    }
    if (this.closed) this.queue = [];
  }

  _sendSubscribe(content, sub) {
    const frame = { op: "subscribe", content };
    if (sub.offset !== null && sub.epoch !== null) frame.since = { offset: sub.offset, epoch: sub.epoch };
    this._raw(frame);
  }

  _op(frame) {
    const ref = String(this.nextRef++);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(ref);
        // Never send an op after its caller has been told it failed.
        this.queue = this.queue.filter((q) => q.ref !== ref);
        reject(new EngageError("timeout", "no reply from the server"));
      }, OP_TIMEOUT_MS);
      const p = { resolve, reject, timer, sent: false };
      this.pending.set(ref, p);
      p.sent = this._raw({ ...frame, ref }, ref);
    });
  }

  /** Send now if connected (returns true), else queue for the next connection. */
  _raw(frame, ref = null) {
    const text = JSON.stringify(frame);
    if (this._isOpen()) {
      this.ws.send(text);
      return true;
    }
    this.queue.push({ ref, text });
    return false;
  }

  _dispatch(frame) {
    if ((frame.type === "ack" || frame.type === "error") && frame.ref != null) {
      const p = this.pending.get(String(frame.ref));
      if (p) {
        this.pending.delete(String(frame.ref));
        clearTimeout(p.timer);
        if (frame.type === "ack") p.resolve(frame.result);
        else p.reject(new EngageError(frame.code, frame.message));
        return;
      }
    }
    const sub = frame.content !== undefined ? this.subs.get(frame.content) : null;
    if (!sub) return;
    if (frame.type === "subscribed") {
      const resumed = sub.offset !== null;
      // When recovered, the missed events follow and move the offset on one by
      // one; jumping to the current offset now would make us drop them.
      if (!frame.recovered) {
        sub.epoch = frame.epoch;
        sub.offset = frame.offset;
      }
      call(sub.handlers.subscribed, frame);
      if (resumed && !frame.recovered) call(sub.handlers.reload, frame);
      return;
    }
    if (typeof frame.offset === "number") {
      if (sub.offset !== null && frame.offset <= sub.offset) return; // already seen
      sub.offset = frame.offset;
      sub.epoch = frame.epoch;
    }
    call(sub.handlers[frame.type], frame);
  }
}

function call(fn, arg) {
  if (typeof fn === "function") {
    try { fn(arg); } catch (err) { console.error("engage handler failed", err); }
  }
}

function absoluteWsUrl(url) {
  if (/^wss?:/.test(url)) return url;
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}${url.startsWith("/") ? "" : "/"}${url}`;
}

// -- the demo widget -------------------------------------------------------

/**
 * Wire a page's [data-engage] elements to one content item. All text is set
 * with textContent: comment bodies and names are never parsed as HTML.
 */
export async function mountDemo(root, { content, token = null, apiBase = "" }) {
  const $ = (name) => root.querySelector(`[data-engage="${name}"]`);
  const headers = token ? { Authorization: `Bearer ${token}` } : {};
  const comments = new Map(); // id -> element
  let liked = false;

  const setCounts = (f) => {
    for (const key of ["views", "likes", "applause", "watching"]) {
      const el = $(key);
      if (el && typeof f[key] === "number") el.textContent = String(f[key]);
    }
  };

  const renderComment = (c) => {
    let el = comments.get(c.id);
    if (!el) {
      el = document.createElement("li");
      el.dataset.commentId = c.id;
      const meta = document.createElement("div");
      meta.className = "engage-meta";
      const body = document.createElement("div");
      body.className = "engage-body";
      const replies = document.createElement("ul");
      replies.className = "engage-replies";
      el.append(meta, body, replies);
      el.dataset.createdAt = c.created_at;
      comments.set(c.id, el);
      const parent = c.parent && comments.get(c.parent);
      const list = parent ? parent.querySelector(".engage-replies") : $("comment-list");
      // Oldest first, wherever it came from: a live event can arrive while the
      // list is still loading over HTTP, before older comments are rendered.
      const next = [...list.children].find((other) => isBefore(el, other));
      list.insertBefore(el, next || null);
    }
    el.querySelector(".engage-meta").textContent = `${c.author} · ${new Date(c.created_at).toLocaleString()}${c.edited_at ? " (edited)" : ""}`;
    el.querySelector(".engage-body").textContent = c.body;
  };

  const loadComments = async () => {
    comments.clear();
    $("comment-list").replaceChildren();
    let cursor = null;
    do {
      const q = new URLSearchParams({ sort: "oldest", limit: "100" });
      if (cursor) q.set("cursor", cursor);
      const res = await fetch(`${apiBase}/v1/content/${encodeURIComponent(content)}/comments?${q}`);
      if (!res.ok) break;
      const page = await res.json();
      for (const c of page.items) {
        renderComment(c);
        for (const r of c.replies) renderComment(r);
      }
      cursor = page.next;
    } while (cursor);
  };

  const client = new EngageClient({
    url: `${apiBase.replace(/^http/, "ws") || ""}/v1/ws`, token,
    onStatus: (s) => { const el = $("status"); if (el) el.textContent = s; },
  });
  // Load the list over HTTP only once the subscription is confirmed: a comment
  // made between an earlier load and the subscription would be in neither.
  // Whatever is in both is rendered once (by id).
  let firstSubscribed;
  const subscribedOnce = new Promise((resolve) => { firstSubscribed = resolve; });
  client.subscribe(content, {
    subscribed: (f) => { setCounts(f); firstSubscribed(); },
    counts: setCounts,
    comment: (f) => renderComment(f.comment),
    comment_updated: (f) => renderComment(f.comment),
    comment_deleted: (f) => { const el = comments.get(f.comment.id); if (el) { el.remove(); comments.delete(f.comment.id); } },
    reload: loadComments,
  });
  client.view(content).catch(() => {});

  const likeButton = $("like-button");
  if (likeButton) likeButton.addEventListener("click", async () => {
    try {
      const r = liked ? await client.unlike(content) : await client.like(content);
      liked = r.liked;
      likeButton.setAttribute("aria-pressed", String(liked));
      $("likes").textContent = String(r.likes);
    } catch (err) { showError(root, err); }
  });
  const clapButton = $("applause-button");
  if (clapButton) clapButton.addEventListener("click", async () => {
    try {
      const r = await client.applaud(content, 1);
      $("applause").textContent = String(r.applause);
    } catch (err) { showError(root, err); }
  });
  const form = $("comment-form");
  if (form) form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const box = $("comment-body");
    const body = box.value;
    if (!body.trim()) return;
    try {
      const r = await client.comment(content, body);
      renderComment(r.comment);
      box.value = "";
    } catch (err) { showError(root, err); }
  });
  await subscribedOnce;
  try { await loadComments(); } catch (err) { showError(root, err); }
  return client;
}

/** Whether comment element a sorts before b: by created_at, then by id. */
function isBefore(a, b) {
  const [ta, tb] = [a.dataset.createdAt || "", b.dataset.createdAt || ""];
  if (ta !== tb) return Date.parse(ta) < Date.parse(tb);
  const [ia, ib] = [a.dataset.commentId, b.dataset.commentId];
  return ia.length !== ib.length ? ia.length < ib.length : ia < ib;
}

function showError(root, err) {
  const el = root.querySelector('[data-engage="error"]');
  if (el) el.textContent = err.message || String(err);
}
