"""The WSGI app of apps.py, with the profiler started by the application itself (``import profiler.auto``)."""

import profiler.auto  # noqa: F401

from apps import application  # noqa: F401
