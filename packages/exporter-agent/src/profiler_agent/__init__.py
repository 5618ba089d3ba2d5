"""pyprof-dd-exporter-agent: upload profiles to a Datadog agent or intake, wire-compatible with ddtrace."""

__version__ = "0.1.0"
