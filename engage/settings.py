"""Configuration: ``config/default.toml``, an optional ``--config`` file, then
``ENGAGE_*`` environment variables, each overriding the one before.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, fields
from functools import cached_property
from pathlib import Path
from typing import Any, Mapping

from engage.errors import ConfigError

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "config" / "default.toml"
ENV_PREFIX = "ENGAGE_"


@dataclass(frozen=True)
class Settings:
    """Every setting, with its type; defaults live in ``config/default.toml``."""

    host: str = "127.0.0.1"
    port: int = 8080
    database_url: str = ""
    redis_url: str = ""
    data_dir: str = "var"
    redis_prefix: str = "engage:"
    jwt_secret: str = ""
    dev_mode: bool = False
    applause_cap: int = 50
    flush_interval: float = 1.0
    flush_max_retry_delay: float = 2.0
    sweep_stale_after: float = 15.0
    sweep_interval: float = 5.0
    counter_ttl: int = 604800
    content_idle_timeout: float = 60.0
    max_content_actors: int = 100_000
    events_max_batch: int = 1000
    max_body_bytes: int = 65536
    database_pool_size: int = 10
    database_hot_pool_size: int = 4
    redis_pool_size: int = 50
    backlog: int = 4096
    #: Worker processes sharing the port (``auto``: one per core); see engage/workers.py.
    workers: str = "1"
    #: Set by the parent for its workers: listen with SO_REUSEPORT beside the others.
    reuse_port: bool = False
    shutdown_timeout: float = 10.0
    log_level: str = "info"
    comment_max_chars: int = 5000
    edit_window: float = 300.0
    counts_interval: float = 0.25
    history_size: int = 1000
    history_ttl: int = 86400
    max_subscriptions: int = 128
    allowed_origins: str = ""
    ws_max_message_bytes: int = 65536
    ws_outbox_bytes: int = 1048576
    ws_ping_interval: float = 25.0
    ws_idle_timeout: float = 60.0
    presence_refresh: float = 5.0
    presence_ttl: float = 30.0
    max_connections: int = 50000
    max_connections_per_ip: int = 1000
    http_keep_alive_timeout: float = 5.0
    http_request_timeout: float = 10.0
    ws_max_fragments: int = 64
    ws_message_timeout: float = 10.0
    publish_max_deliveries: int = 5
    publish_claim_idle: float = 30.0
    notify_coalesce_window: float = 10.0
    notify_rate_per_minute: int = 30
    notify_max_per_user: int = 1000
    webhook_urls: str = ""
    webhook_secrets: str = ""
    webhook_max_attempts: int = 8
    webhook_timeout: float = 10.0
    jwt_jwks_file: str = ""
    jwt_audience: str = ""
    jwt_issuer: str = ""
    jwt_roles_claim: str = "roles"
    ws_auth_grace: float = 30.0
    rate_limits: bool = True
    rate_comment: str = "1/3s burst 5"
    rate_comment_ip: str = "10/3s burst 30"
    rate_like: str = "10/1s burst 30"
    rate_view: str = "10/1s burst 60"
    rate_ip: str = "300/1s burst 600"
    rate_events_ip: str = "20000/1s burst 40000"
    rate_ws_frames: str = "50/1s burst 200"
    rate_connect_ip: str = "20/1s burst 100"
    trusted_proxies: str = ""
    view_dedup_window: float = 600.0
    moderation_mode: str = "none"
    moderation_hold_words: str = ""
    moderation_block_words: str = ""

    @property
    def webhook_endpoints(self) -> list[str]:
        """``webhook_urls`` as a list (comma-separated in config)."""
        return [u.strip() for u in self.webhook_urls.split(",") if u.strip()]

    @property
    def webhook_keys(self) -> list[str]:
        """``webhook_secrets`` as a list; the first one signs."""
        return [k.strip() for k in self.webhook_secrets.split(",") if k.strip()]

    @property
    def jwt_secrets(self) -> list[str]:
        """``jwt_secret`` as a list (comma-separated); the first signs dev tokens,
        all of them verify, so a secret can be rotated without a flag day."""
        return [k.strip() for k in self.jwt_secret.split(",") if k.strip()]

    @cached_property  # read per request: parsed once (frozen, so never stale)
    def proxies(self) -> frozenset[str]:
        """``trusted_proxies`` as a set: peers whose ``X-Forwarded-For`` is believed."""
        return frozenset(p.strip() for p in self.trusted_proxies.split(",") if p.strip())

    @property
    def hold_words(self) -> list[str]:
        """``moderation_hold_words`` as a list (comma-separated in config)."""
        return [w.strip() for w in self.moderation_hold_words.split(",") if w.strip()]

    @property
    def block_words(self) -> list[str]:
        """``moderation_block_words`` as a list (comma-separated in config)."""
        return [w.strip() for w in self.moderation_block_words.split(",") if w.strip()]

    @cached_property  # read per WebSocket handshake
    def origins(self) -> frozenset[str]:
        """``allowed_origins`` as a set (comma-separated in config)."""
        return frozenset(o.strip().rstrip("/") for o in self.allowed_origins.split(",") if o.strip())

    @property
    def worker_count(self) -> int:
        """``workers`` as a number (``auto``: the cores this process may use)."""
        if self.workers == "auto":
            return max(1, len(os.sched_getaffinity(0)))
        return int(self.workers)

    @property
    def embedded(self) -> bool:
        """True when either store URL is unset and run.py must bring its own."""
        return not self.database_url or not self.redis_url

    def replace(self, **changes: Any) -> "Settings":
        return dataclasses.replace(self, **changes)

    def redacted(self) -> dict[str, Any]:
        """Settings safe to log: secrets and URL passwords hidden."""
        out = dataclasses.asdict(self)
        for secret in ("jwt_secret", "webhook_secrets"):
            if out[secret]:
                out[secret] = "***"
        for key in ("database_url", "redis_url"):
            out[key] = _redact_url(out[key])
        out["webhook_urls"] = ",".join(_redact_webhook_url(u) for u in self.webhook_endpoints)
        return out


def _redact_url(url: str) -> str:
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in creds else url


def _redact_webhook_url(url: str) -> str:
    """A webhook URL without its password or query string (either may hold a
    credential)."""
    base, query, _ = _redact_url(url).partition("?")
    return base + ("?***" if query else "")


def _coerce(name: str, kind: type, value: Any) -> Any:
    try:
        if kind is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(f"not a boolean: {value!r}")
        if kind is int and isinstance(value, float) and not value.is_integer():
            raise ValueError(f"not an integer: {value!r}")
        return kind(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"setting {name}: {exc}") from None


def load_settings(
    config_file: str | os.PathLike | None = None,
    env: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Build :class:`Settings` from the layered sources.

    Args:
        config_file: an extra TOML file read after the defaults.
        env: environment to read ``ENGAGE_*`` from (default ``os.environ``).
        **overrides: final overrides (command-line flags, tests).

    Raises:
        ConfigError: unknown key, wrong type or unreadable file.
    """
    env = os.environ if env is None else env
    types = {f.name: _type_of(f) for f in fields(Settings)}
    values: dict[str, Any] = {}
    for path in (DEFAULT_CONFIG, config_file):
        if path is None:
            continue
        try:
            data = tomllib.loads(Path(path).read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config {path}: {exc}") from None
        for key, value in data.items():
            if key not in types:
                raise ConfigError(f"{path}: unknown setting {key!r}")
            values[key] = value
    for name in types:
        raw = env.get(ENV_PREFIX + name.upper())
        if raw is not None:
            values[name] = raw
    values.update({k: v for k, v in overrides.items() if v is not None})
    unknown = set(values) - set(types)
    if unknown:
        raise ConfigError(f"unknown settings: {sorted(unknown)}")
    settings = Settings(**{k: _coerce(k, types[k], v) for k, v in values.items()})
    _validate(settings)
    return settings


def _type_of(f: dataclasses.Field) -> type:
    return {"str": str, "int": int, "float": float, "bool": bool}[str(f.type)]


def _validate(s: Settings) -> None:
    checks = [
        (s.applause_cap >= 1, "applause_cap must be >= 1"),
        (s.flush_interval > 0, "flush_interval must be > 0"),
        (s.counter_ttl > 0, "counter_ttl must be > 0"),
        (s.content_idle_timeout > 0, "content_idle_timeout must be > 0"),
        (1 <= s.events_max_batch <= 100_000, "events_max_batch must be 1..100000"),
        (0 < s.port < 65536, "port must be 1..65535"),
        (s.publish_max_deliveries >= 1, "publish_max_deliveries must be >= 1"),
        (s.publish_claim_idle > 0, "publish_claim_idle must be > 0"),
        (s.notify_coalesce_window >= 0, "notify_coalesce_window must be >= 0"),
        (s.notify_rate_per_minute >= 0, "notify_rate_per_minute must be >= 0 (0: no cap)"),
        (s.notify_max_per_user >= 1, "notify_max_per_user must be >= 1"),
        (not s.webhook_endpoints or bool(s.webhook_keys),
         "webhook_urls needs webhook_secrets to sign with"),
        (s.webhook_max_attempts >= 1, "webhook_max_attempts must be >= 1"),
        (all(u.startswith(("http://", "https://")) for u in s.webhook_endpoints),
         "webhook_urls must be http(s) URLs"),
        (s.ws_auth_grace >= 0, "ws_auth_grace must be >= 0"),
        (s.view_dedup_window >= 0, "view_dedup_window must be >= 0 (0: no de-duplication)"),
        (s.workers == "auto" or (s.workers.isdigit() and int(s.workers) >= 1),
         "workers must be a number >= 1 or auto"),
        (s.moderation_mode in ("none", "all", "first"),
         "moderation_mode must be none, all or first"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)
