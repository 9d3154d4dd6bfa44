"""Engage: a self-hosted real-time engagement server.

Layout::

    run.py                  root nursery: supervisor tree + hypercorn, signals, start-up line
    engage/http.py          gateway: routes -> validation -> actor messages; problem+json
    engage/supervisor.py    OTP-style Supervisor / DynamicSupervisor, ChildSpec, restart budget
    engage/system.py        opens the stores, builds the actors and the root supervisor
    engage/actors/          one idea per package: messages.py (frozen dataclasses) + actor
        ref.py              Mailbox, ActorRef (tell / ask / request), Reply
        content/            one actor per content id, started on demand, passivated when idle
        mirror/             group-commits counter changes into Redis (one pipeline per round)
        flush/              flush actor (Redis pending -> Postgres, exactly once) and sweeper
    engage/domain/          the rules as plain code: ops, validation, applause cap, batches
    engage/store/           Redis and Postgres behind typing.Protocols; Lua scripts; migrations
    engage/auth.py          bearer tokens -> Identity
    engage/settings.py      config/default.toml < --config file < ENGAGE_* environment
    engage/embedded.py      bundled Postgres + Redis for `python run.py` on a bare machine
    engage/errors.py        the error hierarchy
    engage/metrics.py       Prometheus metrics

A view, like or applause travels: http -> ContentDirectory -> ContentActor ->
MirrorActor (Redis script: totals + pending log) -> ack. Every flush_interval
the FlushActor hands the pending log off atomically and applies it to Postgres
in one transaction keyed by batch id.
"""

__version__ = "0.1.0"
