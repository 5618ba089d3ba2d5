"""pyprof-dd-collector-stack: wall-time and CPU-time sampling of every thread's Python stack."""

__version__ = "0.1.0"
