"""Names of the program's threads, remembered past their end, for samples labelled late.

Some samples are labelled after their thread has ended: the stack sampler turns
captures into samples when it next holds the GIL, the memory collector labels
its stacks at each flush. Collectors that see a live thread's name record it
here (:func:`remember`); :func:`name_of` gives the live name, else the
remembered one. Bounded: the oldest entries go first beyond ``MAX_THREADS``.
"""

from __future__ import annotations

import threading

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, Optional, Tuple

MAX_THREADS = 4096

_names: "Dict[Tuple[int, int], str]" = {}


def remember(ident: int, native_id: int, name: str) -> None:
    """Record that thread ``(ident, native_id)`` is (or was last) called ``name``."""
    key = (ident, native_id)
    if _names.get(key) == name:
        return
    if len(_names) >= MAX_THREADS:
        try:
            del _names[next(iter(_names))]
        except (StopIteration, KeyError, RuntimeError):
            pass
    _names[key] = name


def remember_live_threads() -> None:
    """Record the names of every thread ``threading`` knows now."""
    for thread in list(threading._active.values()):  # type: ignore[attr-defined]
        if thread.ident is not None:
            remember(thread.ident, thread.native_id or 0, thread.name)


def name_of(ident: int, native_id: int) -> "Optional[str]":
    """The thread's name if it is alive (and is that thread), else the one remembered, else None."""
    thread = threading._active.get(ident)  # type: ignore[attr-defined]
    if thread is not None and (not native_id or thread.native_id in (native_id, None)):
        name = thread.name
        remember(ident, native_id or thread.native_id or 0, name)
        return name
    return _names.get((ident, native_id))
