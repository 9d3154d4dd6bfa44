"""Reading a socket the cheap way: a plain non-blocking ``recv`` first.

trio's ``SocketStream.receive_some`` costs a scheduling round trip on every
read, even when the kernel already holds the bytes: as much as parsing the
small WebSocket frame or HTTP request they carry. The WebSocket transport and
the HTTP connection both call :func:`recv_nowait` first and
:func:`recv_wait` only when it finds nothing; each checkpoints on its own
every few direct reads, so a flooding peer cannot starve other tasks.
"""

from __future__ import annotations

import socket

import trio


def recv_nowait(raw: socket.socket, size: int) -> bytes | None:
    """What the kernel holds (``b""`` if the peer ended or the socket broke);
    None if nothing is there yet."""
    try:
        return raw.recv(size)
    except BlockingIOError:
        return None
    except OSError:
        return b""


async def recv_wait(raw: socket.socket, size: int) -> bytes:
    """Wait until ``raw`` is readable and read; ``b""`` if it ended or broke."""
    while True:
        try:
            await trio.lowlevel.wait_readable(raw)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return b""
        data = recv_nowait(raw, size)
        if data is not None:
            return data
