"""Who is on the other end: the client's IP address behind trusted proxies."""

from __future__ import annotations

import ipaddress


def client_address(peer: str | None, forwarded_for: str | None,
                   trusted_proxies: frozenset[str]) -> str:
    """The address rate limits are keyed on.

    ``X-Forwarded-For`` is believed only when the TCP peer is one of
    ``trusted_proxies`` (our own nginx); otherwise anyone could claim any
    address and dodge per-IP limits. Walking the header from the right, the
    first hop that is not a trusted proxy is the client.

    Args:
        peer: the TCP peer's address (``None`` if unknown).
        forwarded_for: the ``X-Forwarded-For`` header, if any.
        trusted_proxies: addresses of proxies whose header we believe.
    """
    address = peer or "unknown"
    if not forwarded_for or address not in trusted_proxies:
        return address
    for hop in reversed([h.strip() for h in forwarded_for.split(",")]):
        try:
            hop = str(ipaddress.ip_address(hop))
        except ValueError:
            return address  # a garbled header: fall back to the proxy itself
        if hop not in trusted_proxies:
            return hop
    return address
