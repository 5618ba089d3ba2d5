"""Text from profile files made safe to print: names and paths come from whoever wrote the file."""

from __future__ import annotations

import re

# C0 controls (ESC among them), DEL, C1 controls (CSI as one code point among them), and the
# Unicode bidirectional overrides and isolates, which reorder what a terminal shows.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _escape(match: "re.Match[str]") -> str:
    code = ord(match.group())
    return "\\x%02x" % code if code < 0x100 else "\\u%04x" % code


def printable(text: object) -> str:
    """``text`` as a string with every control character written as an escape (``\\x1b``,
    ``\\x0a``, ``\\u202e``), so printing it cannot move the cursor, recolour, retitle or reorder
    anything on the terminal, nor start a new line."""
    return _UNSAFE.sub(_escape, str(text))
