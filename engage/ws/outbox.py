"""The write side of a WebSocket: direct non-blocking writes, then a bounded outbox.

The hot path is :meth:`FrameWriter.write_nowait`: a publisher frames an event
once (:mod:`engage.ws.frames`) and hands the same bytes to every subscriber.
For each one it is a single non-blocking ``send(2)`` on the raw socket, from
the publisher's own task: no task switch, no await, no copy.

Only what the kernel will not take goes to a bounded, byte-counted outbox,
drained by a writer task that exists only while the outbox is non-empty (an
idle connection has no writer task). Ordering rules:

* A direct write happens only while the writer is idle (outbox empty and no
  ``send_all`` in flight), so direct writes and the writer's ``send_all``
  never interleave and trio's send conflict detector is never tripped.
* Once anything is queued, every later frame is queued behind it.
* A partly written frame's remainder is always queued (never dropped), or
  the byte stream would be corrupt.
* If a frame would push the outbox past ``max_outbox_bytes``,
  :meth:`~FrameWriter.write_nowait` returns False and sets
  ``slow_consumer``; the caller closes the socket with
  :data:`~engage.ws.frames.SLOW_CONSUMER_CLOSE` from a task of its own.
* If the writer is cancelled or the peer is gone, the stream is marked
  broken and nothing more is written to it.
"""

from __future__ import annotations

import socket
from collections import deque

import trio

DEFAULT_MAX_OUTBOX_BYTES = 1024 * 1024
#: The writer joins queued frames into writes of up to this many bytes.
WRITE_CHUNK_BYTES = 64 * 1024


class FrameWriter:
    """Writes complete frames to one socket in order, never blocking the caller.

    Args:
        stream: the connection's trio stream (the writer task's ``send_all``).
        raw: the stdlib socket under ``stream`` (direct non-blocking ``send``).
        nursery: where writer tasks run; a writer ends when the outbox is empty
            or the stream is closed.
        max_outbox_bytes: the outbox bound for :meth:`write_nowait`.

    Attributes:
        slow_consumer: True once :meth:`write_nowait` found the outbox full.
        frames_direct: frames written whole by a direct ``send``.
        frames_queued: frames (or remainders) that went through the outbox.
    """

    __slots__ = ("_stream", "_raw", "_nursery", "max_outbox_bytes", "_writable", "_broken",
                 "_outbox", "_outbox_bytes", "_writing", "_queued_total", "_sent_total",
                 "_flushed", "slow_consumer", "frames_direct", "frames_queued")

    def __init__(self, stream: trio.SocketStream, raw: socket.socket, nursery: trio.Nursery,
                 max_outbox_bytes: int = DEFAULT_MAX_OUTBOX_BYTES) -> None:
        self._stream = stream
        self._raw = raw
        self._nursery = nursery
        self.max_outbox_bytes = max_outbox_bytes
        self._writable = False  # True while data frames may be written
        self._broken = False
        self._outbox: deque[bytes] | None = None
        self._outbox_bytes = 0
        self._writing = False
        self._queued_total = 0
        self._sent_total = 0
        self._flushed: trio.Event | None = None
        self.slow_consumer = False
        self.frames_direct = 0
        self.frames_queued = 0

    def write_nowait(self, frame: bytes) -> bool:
        """Write a complete frame without waiting: the fan-out hot path.

        Args:
            frame: a complete frame from :mod:`engage.ws.frames`; it may be
                shared with other connections (it is never modified).

        Returns:
            True if the frame was written or queued. False if the connection
            is not open, or the outbox is full: then :attr:`slow_consumer` is
            set and the caller should close with ``SLOW_CONSUMER_CLOSE`` from a
            task of its own (never from the publishing loop).
        """
        if not self._writable:
            return False
        if not self._writing:
            try:
                sent = self._raw.send(frame)
            except BlockingIOError:
                sent = 0
            except OSError:
                self._mark_broken()
                return False
            if sent == len(frame):
                self.frames_direct += 1
                return True
            self._enqueue(frame[sent:] if sent else frame)
            return True
        if self._outbox_bytes + len(frame) > self.max_outbox_bytes:
            self.slow_consumer = True
            return False
        self._enqueue(frame)
        return True

    def _write(self, data: bytes) -> None:
        """Like :meth:`write_nowait` without the bound or the open check."""
        if self._broken:
            return
        if not self._writing:
            try:
                sent = self._raw.send(data)
            except BlockingIOError:
                sent = 0
            except OSError:
                self._mark_broken()
                return
            if sent == len(data):
                self.frames_direct += 1
                return
            data = data[sent:]
        self._enqueue(data)

    async def _write_and_wait(self, data: bytes) -> bool:
        """Write ``data`` (unbounded) and wait until the kernel has it; False if lost."""
        self._write(data)
        if not self._writing:
            await trio.lowlevel.checkpoint()
            return not self._broken
        mark = self._queued_total
        while self._sent_total < mark:
            if not self._writing:  # the writer stopped short: lost, or dropped by a close
                return False
            await self._wait_progress()
        return True

    async def _wait_flushed(self) -> None:
        """Wait until the writer is idle (outbox empty, or the stream broken)."""
        while self._writing:
            await self._wait_progress()

    async def _wait_progress(self) -> None:
        if self._flushed is None:
            self._flushed = trio.Event()
        await self._flushed.wait()

    def _enqueue(self, data: bytes) -> None:
        if self._outbox is None:
            self._outbox = deque()
        self._outbox.append(data)
        self._outbox_bytes += len(data)
        self._queued_total += len(data)
        self.frames_queued += 1
        if not self._writing:
            self._writing = True
            self._nursery.start_soon(self._drain)

    async def _drain(self) -> None:
        """The writer task: runs while the outbox is non-empty, then exits."""
        outbox = self._outbox
        assert outbox is not None
        finished = False
        try:
            while outbox:
                chunk = outbox.popleft()
                if outbox and len(chunk) < WRITE_CHUNK_BYTES:
                    parts = [chunk]
                    size = len(chunk)
                    while outbox and size + len(outbox[0]) <= WRITE_CHUNK_BYTES:
                        part = outbox.popleft()
                        parts.append(part)
                        size += len(part)
                    chunk = b"".join(parts)
                await self._stream.send_all(chunk)
                self._outbox_bytes -= len(chunk)
                self._sent_total += len(chunk)
                self._wake()
            finished = True
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            if not finished:  # lost, or cancelled mid-write: the byte stream is unusable
                self._mark_broken()
                outbox.clear()
            self._outbox_bytes = 0
            self._outbox = None
            self._writing = False
            self._wake()

    def _wake(self) -> None:
        if self._flushed is not None:
            self._flushed.set()
            self._flushed = None

    def _mark_broken(self) -> None:
        self._broken = True
        self._writable = False

    def _drop_queued(self) -> None:
        """Discard queued frames (a slow consumer's); a chunk being written stays."""
        if self._outbox:
            self._outbox_bytes -= sum(len(f) for f in self._outbox)
            self._outbox.clear()

    def outbox_statistics(self) -> dict[str, int | bool]:
        """``outbox_bytes``/``outbox_frames`` now, ``frames_direct``/``frames_queued``
        so far, ``writer_active`` and ``slow_consumer``."""
        return {
            "outbox_bytes": self._outbox_bytes,
            "outbox_frames": len(self._outbox) if self._outbox else 0,
            "frames_direct": self.frames_direct,
            "frames_queued": self.frames_queued,
            "writer_active": self._writing,
            "slow_consumer": self.slow_consumer,
        }
