"""Kept for imports of ``profiler_lock.import_hook``: the hook lives in :mod:`profiler_core.import_hook`."""

from profiler_core.import_hook import PostImportHook

__all__ = ["PostImportHook"]
