// Socket.IO reference server for bench/fanout.py, deployed "as people deploy it":
// socket.io + @socket.io/redis-adapter (pub/sub over the `redis` client).
//
//   PORT=0 REDIS_URL=redis://127.0.0.1:6379/0 PREFIX=bench: node server.js
//
// Prints {"port": N} once listening. Then:
//   * clients emit "join" (room, ack) -> socket.join(room); ack({joined: room})
//   * POST /publish/<room> with a JSON body -> io.to(room).emit("comment", body)
//     (through the Redis adapter: local delivery + a Redis PUBLISH for other nodes)
//   * "like" / "unlike" / "view" ({content}, ack) -> HINCRBY <prefix>counts:<content>
//     likes|views +-1, then ack({content, likes|views})
const http = require("http");
const { Server } = require("socket.io");
const { createAdapter } = require("@socket.io/redis-adapter");
const { createClient } = require("redis");

const REDIS_URL = process.env.REDIS_URL || "redis://127.0.0.1:6379/0";
const PREFIX = process.env.PREFIX || "sio-bench:";

async function main() {
  const pubClient = createClient({ url: REDIS_URL });
  const subClient = pubClient.duplicate();
  const cmdClient = pubClient.duplicate();
  await Promise.all([pubClient.connect(), subClient.connect(), cmdClient.connect()]);

  const httpServer = http.createServer((req, res) => {
    const m = /^\/publish\/([^/?]+)$/.exec(req.url || "");
    if (req.method !== "POST" || !m) {
      res.writeHead(404).end();
      return;
    }
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      let body;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
      } catch (e) {
        res.writeHead(400).end();
        return;
      }
      io.to(decodeURIComponent(m[1])).emit("comment", body);
      res.writeHead(201, { "content-type": "application/json" }).end('{"ok":true}');
    });
  });

  const io = new Server(httpServer, {
    transports: ["websocket"],
    serveClient: false,
    perMessageDeflate: false,
    adapter: createAdapter(pubClient, subClient, { key: PREFIX + "socket.io" }),
  });

  const FIELD = { like: ["likes", 1], unlike: ["likes", -1], view: ["views", 1] };
  io.on("connection", (socket) => {
    socket.on("join", (room, ack) => {
      socket.join(String(room));
      if (typeof ack === "function") ack({ joined: room });
    });
    for (const op of Object.keys(FIELD)) {
      socket.on(op, (msg, ack) => {
        const [field, delta] = FIELD[op];
        const content = msg && msg.content;
        if (typeof content !== "string" || typeof ack !== "function") return;
        cmdClient.hIncrBy(PREFIX + "counts:" + content, field, delta).then(
          (v) => ack({ content, [field]: v }),
          (err) => ack({ error: String(err) }));
      });
    }
  });

  const stop = async () => {
    io.close();
    await Promise.allSettled([pubClient.quit(), subClient.quit(), cmdClient.quit()]);
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);

  httpServer.listen(Number(process.env.PORT || 0), "127.0.0.1", () => {
    console.log(JSON.stringify({ port: httpServer.address().port }));
  });
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
