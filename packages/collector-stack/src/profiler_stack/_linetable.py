"""Line numbers from a copy of a code object's line table, as ``PyCode_Addr2Line`` reads the table.

The stack sampler copies the line table of a code object it does not hold at the
moment it captures a frame (``_codenames.h``), and turns the instruction offset into
a line here, later, without the code object. Formats: the location table of CPython
3.11 and later (``Objects/locations.md``) and the PEP 626 line table of 3.10.
"""

from __future__ import annotations

import sys

_LOCATION_TABLE = sys.version_info >= (3, 11)


def line_of(table: bytes, firstlineno: int, offset: int) -> int:
    """The line of the instruction at byte ``offset``, or -1 where the table gives it none
    (as ``PyCode_Addr2Line``); a table cut short answers -1 past its end."""
    if offset < 0:
        return firstlineno
    if _LOCATION_TABLE:
        return _location_table_line(table, firstlineno, offset // 2)
    return _line_table_line(table, firstlineno, offset)


def _varint(table: bytes, i: int) -> "tuple[int, int]":
    read = table[i]
    i += 1
    value = read & 63
    shift = 0
    while read & 64:
        read = table[i]
        i += 1
        shift += 6
        value |= (read & 63) << shift
    return value, i


def _svarint(table: bytes, i: int) -> "tuple[int, int]":
    value, i = _varint(table, i)
    return (-(value >> 1) if value & 1 else value >> 1), i


def _location_table_line(table: bytes, line: int, unit: int) -> int:
    # Entries of (code, length in code units): 15 no location, 14 long form, 13 no columns,
    # 10-12 one line (delta 0-2) with two column bytes, 0-9 short form (same line, one byte).
    i = 0
    start = 0
    n = len(table)
    try:
        while i < n:
            first = table[i]
            i += 1
            code = (first >> 3) & 15
            length = (first & 7) + 1
            located = True
            if code == 15:
                located = False
            elif code == 14:
                delta, i = _svarint(table, i)
                line += delta
                for _ in range(3):
                    _, i = _varint(table, i)
            elif code == 13:
                delta, i = _svarint(table, i)
                line += delta
            elif code >= 10:
                line += code - 10
                i += 2
            else:
                i += 1
            if start <= unit < start + length:
                return line if located else -1
            start += length
    except IndexError:  # cut short by the copy's bound
        pass
    return -1


def _line_table_line(table: bytes, line: int, offset: int) -> int:
    # (bytecode delta, signed line delta) pairs; a line delta of -128 means no line.
    start = 0
    for i in range(0, len(table) - 1, 2):
        end = start + table[i]
        delta = table[i + 1]
        if delta >= 128:
            delta -= 256
        if delta == -128:
            current = -1
        else:
            line += delta
            current = line
        if start <= offset < end:
            return current
        start = end
    return -1
