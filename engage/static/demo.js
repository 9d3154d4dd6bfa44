// The demo page: one content item, live. Reads ?content= and, in development
// mode, gets a token for a random user from the server.
import { mountDemo } from "/static/engage.js";
const params = new URLSearchParams(location.search);
const content = params.get("content") || "demo";
const root = document.getElementById("engage");
root.querySelector('[data-engage="content-id"]').textContent = content;
let token = params.get("token");
if (!token) {
  // Development mode only: the server hands out tokens for random users.
  const res = await fetch("/v1/dev/token", { method: "POST" });
  if (res.ok) {
    const body = await res.json();
    token = body.token;
    root.querySelector('[data-engage="user"]').textContent = body.user;
  }
}
window.engage = await mountDemo(root, { content, token });
