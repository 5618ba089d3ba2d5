"""Running plugin code (collectors, exporters) so that one failing never stops the others nor the host."""

from __future__ import annotations

from profiler_core._log import get_logger

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Iterable

LOG = get_logger("profiler_core")


def plugin_name(plugin: object) -> str:
    """A plugin's ``name``, or its class name when it has none."""
    return getattr(plugin, "name", "") or type(plugin).__name__


def call_each(plugins: "Iterable[object]", action: "Callable[[object], object]", what: str) -> None:
    """``action(plugin)`` for each plugin in turn; a failure is logged ("<name> failed <what>") and skipped."""
    for plugin in plugins:
        try:
            action(plugin)
        except Exception:
            LOG.exception("%s failed %s", plugin_name(plugin), what)
