"""Engage: a self-hosted real-time engagement server.

Layout::

    run.py                  root nursery: supervisor tree + front door (HTTP and WebSocket), signals
    engage/http.py          gateway: core routes -> validation -> actor messages; problem+json
    engage/routes/          more route modules (publishing, notifications, moderation, openapi),
                            each register(app, system)
    engage/web.py           request helpers shared by route modules (identity, bodies, address)
    engage/schemas/         msgspec structs for every HTTP body and WebSocket op (strict decoding)
    engage/openapi/         the OpenAPI document: route table, response structs, builder
    engage/limits.py        the configured rate limits (enforced in Redis: store/ratelimit.py,
                            and inside apply.lua for likes/views)
    engage/http1/           our HTTP/1.1 server on trio (httptools): keep-alive, pipelining,
                            deadlines, connection caps; the ASGI bridge to quart-trio
    engage/ws/              WebSocket: frames built once, a lean frame reader, transport
                            (direct reads and writes + bounded outbox), front door (one port:
                            upgrades here, HTTP to engage/http1), endpoint (Origin/token/rate
                            checks -> connection actor)
    engage/wire.py          JSON / msgpack frames, SharedFrame (encode once per wire format)
    engage/supervisor.py    OTP-style Supervisor / DynamicSupervisor, ChildSpec, restart budget
    engage/system.py        opens the stores, builds the actors and the root supervisor
    engage/actors/          one idea per package: messages.py (frozen dataclasses) + actor
        ref.py              Mailbox, ActorRef (tell / ask / request), Reply, Callback
        content/            one actor per content id: counters, comments (screening and
                            moderation actions), counts publication
        mirror/             group-commits counter changes into Redis (one pipeline per round)
        flush/              flush actor (Redis pending -> Postgres, exactly once) and sweeper
        router/             one Redis pub/sub connection per process, fan-out to sockets
        presence/           "N watching" across instances
        connection/         one actor per WebSocket, and their shared heartbeat
        publisher/          publish stream -> content metadata -> feeds
        notifier/           event log -> per-user notifications
        webhooks/           event log -> durable queue -> signed POSTs to the site owner
    engage/domain/          the rules as plain code: counters, comments, moderation, text,
                            rate maths (GCRA), content, notifications, webhooks
    engage/store/           Redis and Postgres behind small classes and protocols; Lua scripts;
                            migrations; the event log (the notification queue); pub/sub client
    engage/auth.py          bearer tokens (HS256 secrets, RS256/ES256 JWKS) -> Identity + roles
    engage/settings.py      config/default.toml < --config file < ENGAGE_* environment
    engage/embedded.py      bundled Postgres + Redis for `python run.py` on a bare machine
    engage/errors.py        the error hierarchy
    engage/metrics.py       Prometheus metrics
    engage/static/          engage.js (browser client) and the demo page

A view, like or applause travels: gateway -> ContentDirectory -> ContentActor
-> MirrorActor (Redis script: totals + pending log + event log) -> ack. Every
flush_interval the FlushActor hands the pending log off atomically and applies
it to Postgres in one transaction keyed by batch id. A comment goes to
Postgres, then into its item's history stream and out on pub/sub in one
script; each process's RouterActor writes it to the sockets that want it.
"""

__version__ = "0.1.0"
