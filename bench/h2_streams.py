"""A minimal HTTP/2 client for gRPC server streams, fast enough that the load core is never the limit.

``grpc.aio`` reads about 40,000 messages a second on one core, less than a bare server sends, so a fan-out
or replay driven by it measures the client. This client speaks just enough HTTP/2 (RFC 9113) to open
unary-request, server-streaming gRPC calls over cleartext and count the messages that arrive: the preface,
SETTINGS (acknowledged), PING (answered), WINDOW_UPDATE (flow-control windows of 2^31-1, replenished as
data is read), HEADERS with literal HPACK fields (responses' headers are not decoded: a stream ends with an
END_STREAM flag or RST_STREAM), DATA, and RST_STREAM to cancel. Each DATA payload is cut into gRPC messages
by their 5-byte prefix (compression flag, big-endian length); a stream counts them, and hands their bytes
to ``on_message`` only when one is set (the latency runs parse them, the throughput runs do not).
"""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import Callable
from typing import cast

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE = 0x0, 0x1, 0x3, 0x4, 0x6, 0x7, 0x8
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY = 0x1, 0x1, 0x4, 0x8, 0x20
SETTINGS_ENABLE_PUSH, SETTINGS_INITIAL_WINDOW_SIZE, SETTINGS_MAX_FRAME_SIZE = 0x2, 0x4, 0x5
MAX_WINDOW = 2**31 - 1
DEFAULT_WINDOW = 65_535
MAX_FRAME = 2**20
REPLENISH_BYTES = 1 << 20  # give flow-control credit back after this much data
CANCEL = 0x8
FRAME_HEADER = struct.Struct(">HBBBI")  # 24-bit length as 16 + 8 bits, type, flags, stream id

OnMessage = Callable[[bytes, int], None]  # a message's bytes and its arrival, time.time_ns()


def _frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    size = len(payload)
    return FRAME_HEADER.pack(size >> 8, size & 0xFF, kind, flags, stream_id) + payload


def _literal(name: str, value: str) -> bytes:
    """An HPACK "literal header field without indexing, new name", no Huffman coding (RFC 7541 6.2.2)."""
    return b"\x00" + _length(name.encode()) + _length(value.encode())


def _length(text: bytes) -> bytes:
    """An HPACK string: a 7-bit prefixed length (RFC 7541 5.1), then the bytes."""
    size, out = len(text), bytearray()
    if size < 127:
        out.append(size)
    else:
        out.append(127)
        size -= 127
        while size >= 128:
            out.append(size % 128 + 128)
            size //= 128
        out.append(size)
    return bytes(out) + text


class GrpcStream:
    """One server stream's messages: their count, the last arrival, the end, and optionally a future that
    is done once ``goal`` messages came (``reach``)."""

    def __init__(self, on_message: OnMessage | None) -> None:
        self.on_message = on_message
        self.count = 0
        self.last_ns = 0
        self.pending = b""
        self.unacknowledged = 0
        self.ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.goal = 0
        self.reached: asyncio.Future[None] | None = None

    def reach(self, goal: int) -> asyncio.Future[None]:
        """A future done when ``goal`` messages have come."""
        self.goal, self.reached = goal, asyncio.get_running_loop().create_future()
        if self.count >= goal:
            self.reached.set_result(None)
        return self.reached

    def feed(self, data: bytes, now_ns: int) -> int:
        """Cut ``data`` (after what was left over) into messages; how many were complete."""
        buffer = self.pending + data if self.pending else data
        position, size, complete = 0, len(buffer), 0
        on_message = self.on_message
        while size - position >= 5:
            end = position + 5 + int.from_bytes(buffer[position + 1 : position + 5], "big")
            if end > size:
                break
            if on_message is not None:
                on_message(buffer[position + 5 : end], now_ns)
            complete += 1
            position = end
        self.pending = buffer[position:]
        if complete:
            self.count += complete
            self.last_ns = now_ns
            if self.reached is not None and self.count >= self.goal and not self.reached.done():
                self.reached.set_result(None)
        return complete

    def end(self) -> None:
        if not self.ended.done():
            self.ended.set_result(None)


class H2Connection(asyncio.Protocol):
    """One HTTP/2 connection carrying any number of gRPC server streams."""

    def __init__(self, authority: str) -> None:
        self.authority = authority
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.next_stream_id = 1
        self.streams: dict[int, GrpcStream] = {}
        self.unacknowledged = 0
        self.on_messages: Callable[[int, int], None] | None = None  # (messages, time.time_ns()) per read
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    @classmethod
    async def open(cls, host: str, port: int) -> H2Connection:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(lambda: cls(f"{host}:{port}"), host, port)
        return protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses
        settings = struct.pack(
            ">HIHIHI",
            SETTINGS_ENABLE_PUSH, 0,
            SETTINGS_INITIAL_WINDOW_SIZE, MAX_WINDOW,
            SETTINGS_MAX_FRAME_SIZE, MAX_FRAME,
        )  # fmt: skip
        credit = struct.pack(">I", MAX_WINDOW - DEFAULT_WINDOW)
        self.transport.write(PREFACE + _frame(SETTINGS, 0, 0, settings) + _frame(WINDOW_UPDATE, 0, 0, credit))

    def connection_lost(self, exc: Exception | None) -> None:
        for stream in self.streams.values():
            stream.end()
        if not self.closed.done():
            self.closed.set_result(None)

    def call(self, path: str, request: bytes, on_message: OnMessage | None = None) -> tuple[int, GrpcStream]:
        """Start a call of ``path`` with the serialized ``request``; its stream id and its stream."""
        assert self.transport is not None
        stream_id, self.next_stream_id = self.next_stream_id, self.next_stream_id + 2
        stream = self.streams[stream_id] = GrpcStream(on_message)
        block = b"".join(
            _literal(name, value)
            for name, value in (
                (":method", "POST"),
                (":scheme", "http"),
                (":path", path),
                (":authority", self.authority),
                ("content-type", "application/grpc"),
                ("te", "trailers"),
            )
        )
        body = b"\x00" + struct.pack(">I", len(request)) + request
        self.transport.write(
            _frame(HEADERS, END_HEADERS, stream_id, block) + _frame(DATA, END_STREAM, stream_id, body)
        )
        return stream_id, stream

    def cancel(self, stream_id: int) -> None:
        """Reset the stream (CANCEL), as a client that has read enough does."""
        stream = self.streams.pop(stream_id, None)
        if stream is not None:
            stream.end()
            if self.transport is not None and not self.transport.is_closing():
                self.transport.write(_frame(RST_STREAM, 0, stream_id, struct.pack(">I", CANCEL)))

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data if self.buffer else data
        position, size = 0, len(buffer)
        now_ns = time.time_ns()
        messages = 0
        out: list[bytes] = []
        while size - position >= 9:
            high, low, kind, flags, stream_id = FRAME_HEADER.unpack_from(buffer, position)
            length = (high << 8) | low
            end = position + 9 + length
            if end > size:
                break
            stream_id &= MAX_WINDOW
            if kind == DATA:
                payload = buffer[position + 9 : end]
                if flags & PADDED:
                    payload = payload[1 : len(payload) - payload[0]]
                stream = self.streams.get(stream_id)
                if stream is not None:
                    messages += stream.feed(payload, now_ns)
                    stream.unacknowledged += length
                    if stream.unacknowledged >= REPLENISH_BYTES:
                        out.append(
                            _frame(WINDOW_UPDATE, 0, stream_id, struct.pack(">I", stream.unacknowledged))
                        )
                        stream.unacknowledged = 0
                    if flags & END_STREAM:
                        stream.end()
                self.unacknowledged += length
            elif kind == HEADERS:
                if flags & END_STREAM and (stream := self.streams.get(stream_id)) is not None:
                    stream.end()
            elif kind == RST_STREAM:
                if (stream := self.streams.get(stream_id)) is not None:
                    stream.end()
            elif kind == SETTINGS:
                if not flags & ACK:
                    out.append(_frame(SETTINGS, ACK, 0))
            elif kind == PING:
                if not flags & ACK:
                    out.append(_frame(PING, ACK, 0, buffer[position + 9 : end]))
            elif kind == GOAWAY:
                pass  # the server is going away; its streams end with RST_STREAM or the connection
            position = end
        self.buffer = buffer[position:]
        if self.unacknowledged >= REPLENISH_BYTES:
            out.append(_frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", self.unacknowledged)))
            self.unacknowledged = 0
        if out and self.transport is not None:
            self.transport.write(b"".join(out))
        if messages and self.on_messages is not None:
            self.on_messages(messages, now_ns)
