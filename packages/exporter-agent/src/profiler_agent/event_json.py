"""``json.dumps`` for the upload's event: the json package imports re and enum, 4-6 ms of every
profiled program's start, for a document of strings, numbers and small dicts."""

from __future__ import annotations

from _json import encode_basestring_ascii as _string

_FLOAT_NAMES = {float("inf"): "Infinity", float("-inf"): "-Infinity"}


def dumps(value: object) -> str:
    """``value`` as ``json.dumps(value)`` writes it (same separators, ASCII, keys in their order)
    for dicts with string keys, lists, tuples, strings, ints, floats, booleans and None.
    Raises TypeError for anything else."""
    parts: "list[str]" = []
    _write(value, parts.append)
    return "".join(parts)


def _write(value: object, out) -> None:
    if isinstance(value, str):
        out(_string(value))
    elif value is None:
        out("null")
    elif value is True:
        out("true")
    elif value is False:
        out("false")
    elif isinstance(value, int):
        out(int.__repr__(value))
    elif isinstance(value, float):
        if value != value:
            out("NaN")
        else:
            out(_FLOAT_NAMES.get(value) or float.__repr__(value))
    elif isinstance(value, dict):
        out("{")
        first = True
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError("keys must be str, not %s" % type(key).__name__)
            if not first:
                out(", ")
            first = False
            out(_string(key))
            out(": ")
            _write(item, out)
        out("}")
    elif isinstance(value, (list, tuple)):
        out("[")
        for index, item in enumerate(value):
            if index:
                out(", ")
            _write(item, out)
        out("]")
    else:
        raise TypeError("Object of type %s is not JSON serializable" % type(value).__name__)
