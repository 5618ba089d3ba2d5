"""Loggers that import :mod:`logging` only when first used.

``logging`` (with ``re``, ``traceback``...) costs several milliseconds to import;
a profiler started in every process must not add that to a program that never
logs. ``get_logger(name)`` returns a stand-in forwarding to the real logger.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing costs milliseconds to import in every profiled process
if TYPE_CHECKING:
    from typing import Any


class LazyLogger:
    """Forwards every attribute to ``logging.getLogger(name)``, created on first use.

    ``debug`` and ``info`` do nothing while the program has not imported
    ``logging`` itself: nothing can have configured a handler that would show them.
    """

    __slots__ = ("_name", "_logger")

    def __init__(self, name: str) -> None:
        self._name = name
        self._logger = None

    def debug(self, *args: Any, **kwargs: Any) -> None:
        if self._logger is not None or "logging" in sys.modules:
            self.__getattr__("debug")(*args, **kwargs)

    def info(self, *args: Any, **kwargs: Any) -> None:
        if self._logger is not None or "logging" in sys.modules:
            self.__getattr__("info")(*args, **kwargs)

    def __getattr__(self, attr: str) -> Any:
        logger = self._logger
        if logger is None:
            import logging

            logger = self._logger = logging.getLogger(self._name)
        return getattr(logger, attr)


def get_logger(name: str) -> LazyLogger:
    """A logger for ``name`` that costs nothing until something is logged."""
    return LazyLogger(name)
