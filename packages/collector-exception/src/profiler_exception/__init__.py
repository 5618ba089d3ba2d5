"""pyprof-dd-collector-exception: which code raises what, how often."""

__version__ = "0.1.0"
