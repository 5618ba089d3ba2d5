"""Run a function right after a module is first imported, without importing it first."""

from __future__ import annotations

import sys

from profiler_core._log import get_logger

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable

LOG = get_logger("profiler_core.import_hook")

class PostImportHook:
    """A ``sys.meta_path`` finder that calls ``callback(module)`` once ``name`` has been executed.

    It only wraps the loader the other finders choose for ``name``; every other
    import is passed over at the cost of one string comparison.
    """

    def __init__(self, name: str, callback: "Callable[[object], None]") -> None:
        self.name = name
        self.callback = callback
        self._finding = False

    def install(self) -> None:
        """Put the hook first on ``sys.meta_path``."""
        if self not in sys.meta_path:
            sys.meta_path.insert(0, self)

    def remove(self) -> None:
        """Take the hook off ``sys.meta_path``."""
        try:
            sys.meta_path.remove(self)
        except ValueError:
            pass

    def find_spec(self, fullname, path=None, target=None):
        if fullname != self.name or self._finding:
            return None
        self._finding = True
        try:
            from importlib.util import find_spec

            spec = find_spec(fullname)
        finally:
            self._finding = False
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return None
        loader = spec.loader
        callback = self.callback
        hook = self

        class _Loader:
            def create_module(self, spec):
                return loader.create_module(spec)

            def exec_module(self, module):
                loader.exec_module(module)
                hook.remove()
                try:
                    callback(module)
                except Exception:  # the program's import must succeed whatever happens here
                    LOG.warning("could not instrument %s after its import", module.__name__, exc_info=True)

            def __getattr__(self, attr):
                return getattr(loader, attr)

        spec.loader = _Loader()
        return spec
