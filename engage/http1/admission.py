"""Who may open a connection: a per-process cap and a per-address cap.

Every accepted socket costs a file descriptor. Without a cap, a client that
opens connections faster than they are closed takes the last descriptor and
then nothing works: not the next request, not a WebSocket upgrade, not even
a connection to Redis. :class:`Admission` counts open connections in total
and per peer address; a socket beyond either cap is answered at once
(503 ``server_full`` or 429 ``too_many_connections``, problem+json,
``Connection: close``) and closed, from the accept loop, without a task.

The process cap is the configured ``max_connections``, lowered to what the
descriptor limit leaves after a reserve for the store pools and files
(:func:`connection_capacity`), so the cap always bites before ``EMFILE``.
"""

from __future__ import annotations

import resource
import socket
from typing import Final

from engage.http1.response import encode_response, problem

#: Descriptors kept back for everything that is not a client connection
#: (log files, the bundled servers' pipes, DNS, sockets being refused), on top
#: of the Redis and Postgres pools.
FD_RESERVE: Final = 64


def descriptor_limit() -> int:
    """This process's soft limit on open file descriptors."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def raise_descriptor_limit() -> int:
    """Raise the soft descriptor limit to the hard one (as far as allowed); the new soft."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            return soft
        return target
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def connection_capacity(max_connections: int, pools: int) -> int:
    """How many client connections one process may hold.

    Args:
        max_connections: the configured cap.
        pools: descriptors the store pools may take (Redis, Postgres).
    """
    room = descriptor_limit() - pools - FD_RESERVE
    return max(1, min(max_connections, room))


class Admission:
    """Counts open connections; says whether one more may be served.

    Args:
        max_connections: most open connections in this process.
        per_address: most open connections from one peer address (0: no cap).
        exempt: addresses without a per-address cap (trusted proxies: every
            client behind them shares their address).
    """

    __slots__ = ("max_connections", "per_address", "exempt", "open", "_by_address",
                 "refused_full", "refused_address")

    def __init__(self, max_connections: int, per_address: int = 0,
                 exempt: frozenset[str] = frozenset()) -> None:
        self.max_connections = max_connections
        self.per_address = per_address
        self.exempt = exempt
        self.open = 0
        self._by_address: dict[str, int] = {}
        self.refused_full = 0
        self.refused_address = 0

    def admit(self, address: str) -> bool:
        """Count a new connection from ``address``; False (nothing counted) if over a cap."""
        if self.open >= self.max_connections:
            self.refused_full += 1
            return False
        if self.per_address and address not in self.exempt:
            held = self._by_address.get(address, 0)
            if held >= self.per_address:
                self.refused_address += 1
                return False
            self._by_address[address] = held + 1
        self.open += 1
        return True

    def release(self, address: str) -> None:
        """A connection admitted from ``address`` has closed."""
        self.open -= 1
        held = self._by_address.get(address)
        if held is not None:
            if held <= 1:
                del self._by_address[address]
            else:
                self._by_address[address] = held - 1

    def refusal(self, address: str) -> bytes:
        """The answer for a connection that :meth:`admit` refused."""
        if self.open >= self.max_connections:
            response = problem(503, "the server holds as many connections as it can; retry "
                                    "shortly", code="server_full", headers=[("retry-after", "1")])
        else:
            response = problem(429, f"at most {self.per_address} open connections per address",
                               code="too_many_connections", headers=[("retry-after", "1")])
        return encode_response(response, close=True)

    def statistics(self) -> dict[str, int]:
        return {"open": self.open, "max_connections": self.max_connections,
                "addresses": len(self._by_address), "refused_full": self.refused_full,
                "refused_address": self.refused_address}


def refuse_now(sock: socket.socket, answer: bytes) -> None:
    """Answer a refused connection and close it, without blocking.

    What the peer already sent is read first: closing with unread bytes
    makes the kernel reset the connection, which can destroy the answer.
    """
    try:
        sock.setblocking(False)
        try:
            sock.recv(65536)
        except BlockingIOError:
            pass
        sock.send(answer)
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    finally:
        sock.close()
