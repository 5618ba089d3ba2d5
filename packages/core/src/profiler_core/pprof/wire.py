"""Protocol-buffer wire format, just what ``profile.proto`` needs, written by hand.

The profiled process encodes one profile a period; importing the protobuf runtime there costs tens
of milliseconds at start-up, and it must be imported at start (an import on the flushing thread could
be caught by a fork). These helpers write the same bytes protobuf's serializer writes for proto3:
fields in number order, scalars at their default value left out, repeated scalars packed.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterable

_TWO_64 = 1 << 64


_SMALL = [bytes((i,)) for i in range(0x80)]


def varint(value: int) -> bytes:
    """``value`` as a base-128 varint (a negative int64 as its 64-bit two's complement, 10 bytes)."""
    if 0 <= value < 0x80:
        return _SMALL[value]
    if value < 0:
        value += _TWO_64
    elif value < 0x4000:
        return bytes((value & 0x7F | 0x80, value >> 7))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def int_field(number: int, value: int) -> bytes:
    """A varint field (int64/uint64/bool); nothing for 0, as proto3 leaves defaults out."""
    if not value:
        return b""
    return varint(number << 3) + varint(value)


def bytes_field(number: int, data: bytes) -> bytes:
    """A length-delimited field (a string, a message, a packed array), even when empty."""
    return varint(number << 3 | 2) + varint(len(data)) + data


def message_field(number: int, data: bytes) -> bytes:
    """An embedded message: present (possibly empty) when set."""
    return bytes_field(number, data)


def packed_field(number: int, values: "Iterable[int]") -> bytes:
    """A packed repeated varint field; nothing when there are no values."""
    small = _SMALL
    body = b"".join([small[v] if 0 <= v < 0x80 else varint(v) for v in values])
    if not body:
        return b""
    return bytes_field(number, body)


def string_field(number: int, text: str) -> bytes:
    """A repeated string's element (always written, empty or not); a lone surrogate (a file name
    Python decoded with surrogateescape) is written escaped, so the bytes stay valid UTF-8."""
    return bytes_field(number, text.encode("utf-8", "backslashreplace"))
