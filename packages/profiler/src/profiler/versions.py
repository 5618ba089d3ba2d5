"""Which of the profiler's distributions are installed, at which versions (``--version``)."""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs milliseconds to import
if TYPE_CHECKING:
    from typing import List, Optional, Tuple

#: The meta-package first, then the packages it depends on or offers as extras.
DISTRIBUTIONS = (
    "pyprof-dd",
    "pyprof-dd-core",
    "pyprof-dd-collector-stack",
    "pyprof-dd-collector-lock",
    "pyprof-dd-collector-memory",
    "pyprof-dd-collector-exception",
    "pyprof-dd-exporter-agent",
)


def installed_versions() -> "List[Tuple[str, Optional[str]]]":
    """``(distribution, version or None if not installed)`` for each of DISTRIBUTIONS."""
    from importlib import metadata

    found = []
    for name in DISTRIBUTIONS:
        try:
            found.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            found.append((name, None))
    return found


def version_text(program: str) -> str:
    """The ``--version`` text of ``program``: its own version, then every distribution's."""
    from profiler import __version__

    lines = ["%s %s" % (program, __version__)]
    for name, version in installed_versions():
        lines.append("  %-30s %s" % (name, version or "not installed"))
    return "\n".join(lines) + "\n"
