"""The Postgres v3 wire format: frontend messages and value codecs.

Values travel in binary for the types Engage's hot statements use (integers,
booleans, floats, text, bytea, timestamps, one-dimensional arrays of text
and integers), which is cheaper to decode than text and needs no date
parsing; a column of any other type comes back in text, as ``str``.
"""

from __future__ import annotations

import struct
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Final

PROTOCOL_3: Final = 196608
#: Postgres timestamps count microseconds from here.
PG_EPOCH: Final = datetime(2000, 1, 1, tzinfo=timezone.utc)
PG_EPOCH_NAIVE: Final = datetime(2000, 1, 1)

_INT2, _INT4, _INT8 = struct.Struct("!h"), struct.Struct("!i"), struct.Struct("!q")
_FLOAT4, _FLOAT8 = struct.Struct("!f"), struct.Struct("!d")
_I32 = struct.Struct("!i")
_ARRAY_HEAD = struct.Struct("!iiiii")

BOOL, BYTEA, NAME, INT8, INT2, INT4, TEXT, OID = 16, 17, 19, 20, 21, 23, 25, 26
JSON, FLOAT4, FLOAT8, UNKNOWN, BPCHAR, VARCHAR = 114, 700, 701, 705, 1042, 1043
TIMESTAMP, TIMESTAMPTZ = 1114, 1184
BOOL_ARRAY, BYTEA_ARRAY = 1000, 1001
INT4_ARRAY, TEXT_ARRAY, INT8_ARRAY, VARCHAR_ARRAY = 1007, 1009, 1016, 1015


# -- frontend messages --------------------------------------------------------


def message(kind: bytes, body: bytes = b"") -> bytes:
    return kind + _I32.pack(len(body) + 4) + body


def cstring(text: str) -> bytes:
    return text.encode() + b"\x00"


def startup(params: dict[str, str]) -> bytes:
    body = _I32.pack(PROTOCOL_3) + b"".join(cstring(k) + cstring(v) for k, v in params.items())
    body += b"\x00"
    return _I32.pack(len(body) + 4) + body


def parse(name: str, sql: str) -> bytes:
    return message(b"P", cstring(name) + cstring(sql) + b"\x00\x00")


def describe_statement(name: str) -> bytes:
    return message(b"D", b"S" + cstring(name))


def bind(name: str, params: list[bytes | None], param_formats: list[int],
         result_formats: list[int]) -> bytes:
    parts = [b"\x00", cstring(name), struct.pack(f"!h{len(param_formats)}h",
                                                 len(param_formats), *param_formats),
             _INT2.pack(len(params))]
    for value in params:
        parts.append(b"\xff\xff\xff\xff" if value is None else _I32.pack(len(value)) + value)
    parts.append(struct.pack(f"!h{len(result_formats)}h", len(result_formats), *result_formats))
    return message(b"B", b"".join(parts))


EXECUTE: Final = message(b"E", b"\x00" + _I32.pack(0))
SYNC: Final = message(b"S")
TERMINATE: Final = message(b"X")


# -- values -------------------------------------------------------------------


def _text(data: bytes) -> str:
    return data.decode()


def _timestamptz(data: bytes) -> datetime:
    return PG_EPOCH + timedelta(microseconds=_INT8.unpack(data)[0])


def _timestamp(data: bytes) -> datetime:
    return PG_EPOCH_NAIVE + timedelta(microseconds=_INT8.unpack(data)[0])


def _array(element: Callable[[bytes], Any]) -> Callable[[bytes], list]:
    def decode(data: bytes) -> list:
        ndim, _, _ = struct.unpack_from("!iii", data)
        if ndim == 0:
            return []
        if ndim != 1:
            raise ValueError("only one-dimensional arrays are decoded")
        count = struct.unpack_from("!i", data, 12)[0]
        out, pos = [], 20
        for _ in range(count):
            size = _I32.unpack_from(data, pos)[0]
            pos += 4
            if size < 0:
                out.append(None)
            else:
                out.append(element(data[pos:pos + size]))
                pos += size
        return out
    return decode


#: Binary decoders by type OID.
DECODERS: Final[dict[int, Callable[[bytes], Any]]] = {
    BOOL: lambda d: d == b"\x01", BYTEA: bytes, NAME: _text, TEXT: _text, VARCHAR: _text,
    BPCHAR: _text, JSON: _text, UNKNOWN: _text,
    INT2: lambda d: _INT2.unpack(d)[0], INT4: lambda d: _INT4.unpack(d)[0],
    INT8: lambda d: _INT8.unpack(d)[0], OID: lambda d: struct.unpack("!I", d)[0],
    FLOAT4: lambda d: _FLOAT4.unpack(d)[0], FLOAT8: lambda d: _FLOAT8.unpack(d)[0],
    TIMESTAMPTZ: _timestamptz, TIMESTAMP: _timestamp,
}
DECODERS[TEXT_ARRAY] = DECODERS[VARCHAR_ARRAY] = _array(_text)
DECODERS[INT4_ARRAY] = _array(DECODERS[INT4])
DECODERS[INT8_ARRAY] = _array(DECODERS[INT8])
DECODERS[BOOL_ARRAY] = _array(DECODERS[BOOL])
DECODERS[BYTEA_ARRAY] = _array(bytes)


def _micros(value: datetime, epoch: datetime) -> bytes:
    delta = value - epoch
    return _INT8.pack((delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds)


def _encode_array(oid: int, encode: Callable[[Any], bytes]) -> Callable[[Any], bytes]:
    def encoder(values: Any) -> bytes:
        values = list(values)
        parts = [_ARRAY_HEAD.pack(1, int(any(v is None for v in values)), oid, len(values), 1)]
        for value in values:
            if value is None:
                parts.append(b"\xff\xff\xff\xff")
            else:
                data = encode(value)
                parts.append(_I32.pack(len(data)) + data)
        return b"".join(parts)
    return encoder


def _str(value: Any) -> bytes:
    return (value if isinstance(value, str) else str(value)).encode()


#: Binary encoders of parameters by type OID; other types go as text.
ENCODERS: Final[dict[int, Callable[[Any], bytes]]] = {
    BOOL: lambda v: b"\x01" if v else b"\x00", BYTEA: bytes,
    TEXT: _str, VARCHAR: _str, NAME: _str, BPCHAR: _str,
    INT2: _INT2.pack, INT4: _INT4.pack, INT8: _INT8.pack,
    FLOAT8: lambda v: _FLOAT8.pack(float(v)),
    TIMESTAMPTZ: lambda v: _micros(v, PG_EPOCH), TIMESTAMP: lambda v: _micros(v, PG_EPOCH_NAIVE),
}
ENCODERS[TEXT_ARRAY] = _encode_array(TEXT, _str)
ENCODERS[VARCHAR_ARRAY] = _encode_array(VARCHAR, _str)
ENCODERS[INT4_ARRAY] = _encode_array(INT4, _INT4.pack)
ENCODERS[INT8_ARRAY] = _encode_array(INT8, _INT8.pack)
ENCODERS[BOOL_ARRAY] = _encode_array(BOOL, ENCODERS[BOOL])
ENCODERS[BYTEA_ARRAY] = _encode_array(BYTEA, bytes)


def encode_params(oids: tuple[int, ...], values: tuple) -> tuple[list[bytes | None], list[int]]:
    """The Bind values and their format codes (1 binary, 0 text)."""
    if len(values) != len(oids):
        raise ValueError(f"the statement takes {len(oids)} parameters, {len(values)} given")
    out: list[bytes | None] = []
    formats: list[int] = []
    for oid, value in zip(oids, values):
        if value is None:
            out.append(None)
            formats.append(1)
            continue
        encoder = ENCODERS.get(oid)
        if encoder is None:
            out.append(_str(value))
            formats.append(0)
        else:
            out.append(encoder(value))
            formats.append(1)
    return out, formats
