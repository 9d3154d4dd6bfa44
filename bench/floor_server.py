"""The trio floor for bench/fanout.py: raw trio + wsproto, the least a Python
server on trio can do to fan a message out to a room.

It speaks just enough of Engage's protocol for the load generator: a
WebSocket on ``/v1/ws`` whose ``{"op": "subscribe"}`` joins the one room and
is answered ``{"type": "subscribed", ...}``; ``POST /publish/<room>`` with
``{"body": ...}`` frames one ``comment`` event once (with the next offset)
and writes it to every member, in the publishing task. No pings, no
presence, no counts, no storage, no auth: what it costs to hold and feed
sockets, against which Engage's own costs are read. Prints ``{"port": N}``.
"""

from __future__ import annotations

import json
import struct
import sys
from functools import partial

import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import (AcceptConnection, CloseConnection, Ping, Request,
                            TextMessage)

READ_SIZE = 65536


def server_frame(payload: bytes) -> bytes:
    """An unmasked text frame (servers never mask)."""
    n = len(payload)
    if n < 126:
        head = bytes([0x81, n])
    elif n < 65536:
        head = bytes([0x81, 126]) + struct.pack("!H", n)
    else:
        head = bytes([0x81, 127]) + struct.pack("!Q", n)
    return head + payload


class Floor:
    def __init__(self) -> None:
        self.members: set[trio.SocketStream] = set()
        self.offset = 0

    async def handle(self, stream: trio.SocketStream) -> None:
        try:
            await self._handle(stream)
        except (trio.BrokenResourceError, trio.ClosedResourceError, ValueError, KeyError):
            pass  # one bad or broken connection must not end the server

    async def _handle(self, stream: trio.SocketStream) -> None:
        buffer = b""
        while b"\r\n\r\n" not in buffer:
            data = await stream.receive_some(READ_SIZE)
            if not data:
                return
            buffer += data
        if buffer.startswith(b"POST /publish/"):
            await self._publish(stream, buffer)
        else:
            await self._websocket(stream, buffer)

    async def _publish(self, stream: trio.SocketStream, buffer: bytes) -> None:
        head, _, body = buffer.partition(b"\r\n\r\n")
        room = head.split(b" ", 2)[1].rsplit(b"/", 1)[1].decode()
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(body) < length:
            body += await stream.receive_some(READ_SIZE)
        self.offset += 1
        event = {"type": "comment", "content": room, "offset": self.offset, "epoch": "floor",
                 "comment": {"body": json.loads(body)["body"]}}
        frame = server_frame(json.dumps(event, separators=(",", ":")).encode())
        for member in list(self.members):
            try:
                await member.send_all(frame)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self.members.discard(member)
        await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                              b"Connection: close\r\n\r\nok")
        await stream.aclose()

    async def _websocket(self, stream: trio.SocketStream, buffer: bytes) -> None:
        ws = WSConnection(ConnectionType.SERVER)
        ws.receive_data(buffer)
        try:
            while True:
                for event in ws.events():
                    if isinstance(event, Request):
                        await stream.send_all(ws.send(AcceptConnection()))
                    elif isinstance(event, TextMessage):
                        op = json.loads(event.data)
                        if op.get("op") == "subscribe":
                            self.members.add(stream)
                            reply = {"type": "subscribed", "ref": op.get("ref"),
                                     "content": op.get("content"), "offset": self.offset,
                                     "epoch": "floor", "recovered": False}
                            await stream.send_all(server_frame(json.dumps(reply).encode()))
                    elif isinstance(event, Ping):
                        await stream.send_all(ws.send(event.response()))
                    elif isinstance(event, CloseConnection):
                        return
                data = await stream.receive_some(READ_SIZE)
                if not data:
                    return
                ws.receive_data(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            self.members.discard(stream)


async def main() -> None:
    floor = Floor()
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, floor.handle, 0,
                                                host="127.0.0.1", backlog=4096))
        print(json.dumps({"port": listeners[0].socket.getsockname()[1]}), flush=True)


if __name__ == "__main__":
    try:
        trio.run(main)
    except KeyboardInterrupt:
        sys.exit(0)
