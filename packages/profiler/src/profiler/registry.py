"""Find installed collectors and exporters through entry points.

A collector package that is not installed is simply absent; one that is
installed but fails to import is logged and skipped, never raised.
"""

from __future__ import annotations

import logging
from typing import Dict, List, Type, TypeVar

LOG = logging.getLogger("profiler.registry")

COLLECTORS_GROUP = "profiler.collectors"
EXPORTERS_GROUP = "profiler.exporters"

T = TypeVar("T")


def _entry_points(group: str) -> list:
    from importlib.metadata import entry_points

    return sorted(entry_points(group=group), key=lambda ep: ep.name)


def load_group(group: str) -> Dict[str, type]:
    """Entry point name -> loaded class for every loadable entry point of ``group``, by name."""
    found: Dict[str, type] = {}
    for ep in _entry_points(group):
        if ep.name in found:
            continue
        try:
            found[ep.name] = ep.load()
        except Exception as exc:  # a broken plugin must not break the host
            LOG.warning("cannot load %s %r (%s): %s", group, ep.name, ep.value, exc)
    return found


def available_collectors() -> Dict[str, type]:
    """Installed collector classes by name (``stack``, ``lock``, ``memory``, ``exception``...)."""
    return load_group(COLLECTORS_GROUP)


def available_exporters() -> Dict[str, type]:
    """Installed exporter classes by name (``file``, ``agent``...)."""
    return load_group(EXPORTERS_GROUP)


def names(classes: Dict[str, Type[T]]) -> List[str]:
    """Sorted names of a registry mapping, for messages."""
    return sorted(classes)
