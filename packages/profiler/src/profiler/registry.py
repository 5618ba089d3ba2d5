"""Find installed collectors and exporters through entry points.

A collector package that is not installed is simply absent; one that is
installed but fails to import is logged and skipped, never raised.

The scan reads ``*.dist-info/entry_points.txt`` on ``sys.path`` directly, as
:mod:`importlib.metadata` would (first distribution of a name on the path
wins), without importing it: that module and its e-mail parsing cost tens of
milliseconds, paid by every profiled process at start.
"""

from __future__ import annotations

import importlib
import os
import sys
TYPE_CHECKING = False  # typing costs milliseconds to import in every profiled process
if TYPE_CHECKING:
    from typing import Dict, Iterator, List, Tuple

from profiler_core._log import get_logger

LOG = get_logger("profiler.registry")

COLLECTORS_GROUP = "profiler.collectors"
EXPORTERS_GROUP = "profiler.exporters"


def _normalize(name: str) -> str:
    return name.lower().replace("-", "_").replace(".", "_")


def parse_entry_points(text: str, group: str) -> List[Tuple[str, str]]:
    """``(name, "module:attr")`` pairs of ``group`` in an ``entry_points.txt``."""
    found = []
    section = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
            continue
        if section != group or "=" not in line:
            continue
        name, _, value = line.partition("=")
        value = value.split("[", 1)[0].strip()  # drop extras
        found.append((name.strip(), value))
    return found


def _entry_point_files(path_entries: "Tuple[str, ...]") -> "List[str]":
    """The ``entry_points.txt`` texts of the distributions on ``path_entries``, the first of each
    name, in path order."""
    seen = set()
    texts = []
    for entry in path_entries:
        path = entry or os.getcwd()
        try:
            names = sorted(os.listdir(path))
        except OSError:
            continue
        for name in names:
            if not name.endswith((".dist-info", ".egg-info")):
                continue
            dist = _normalize(name.rsplit(".", 1)[0].split("-", 1)[0])
            if dist in seen:
                continue
            seen.add(dist)
            try:
                with open(os.path.join(path, name, "entry_points.txt"), encoding="utf-8") as f:
                    texts.append(f.read())
            except OSError:
                continue
    return texts


# sys.path as last scanned, and what was found: the collectors' and the exporters' groups are
# looked up in one scan (each scan opens a file per installed distribution).
_scanned: "Tuple[Tuple[str, ...], List[str]]" = ((), [])


def iter_entry_points(group: str) -> Iterator[Tuple[str, str]]:
    """``(name, "module:attr")`` for every installed entry point of ``group``, in sys.path order."""
    global _scanned
    path_entries = tuple(sys.path)
    if _scanned[0] != path_entries or not path_entries:
        _scanned = (path_entries, _entry_point_files(path_entries))
    for text in _scanned[1]:
        yield from parse_entry_points(text, group)


def load_reference(value: str) -> object:
    """Import ``module:attr.path`` and return the object."""
    module_name, _, attr = value.partition(":")
    obj: object = importlib.import_module(module_name.strip())
    for part in filter(None, attr.strip().split(".")):
        obj = getattr(obj, part)
    return obj


def load_group(group: str) -> Dict[str, type]:
    """Entry point name -> loaded class for every loadable entry point of ``group``."""
    found: Dict[str, type] = {}
    for name, value in iter_entry_points(group):
        if name in found:
            continue
        try:
            found[name] = load_reference(value)  # type: ignore[assignment]
        except Exception as exc:  # a broken plugin must not break the host
            LOG.warning("cannot load %s %r (%s): %s", group, name, value, exc)
    return dict(sorted(found.items()))


def available_collectors() -> Dict[str, type]:
    """Installed collector classes by name (``stack``, ``lock``, ``memory``, ``exception``...)."""
    return load_group(COLLECTORS_GROUP)


def available_exporters() -> Dict[str, type]:
    """Installed exporter classes by name (``file``, ``agent``...)."""
    return load_group(EXPORTERS_GROUP)
