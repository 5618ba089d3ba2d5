"""profiler-collector-memory: Allocation and live-heap collector (not yet built).

This distribution installs but registers no entry point yet, so the profiler
runs without it exactly as if it were not installed.
"""

__version__ = "0.1.0"
