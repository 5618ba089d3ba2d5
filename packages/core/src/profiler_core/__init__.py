"""pyprof-dd-core: the contract shared by the profiler's collectors and exporters.

Events (:mod:`profiler_core.events`), the :class:`Recorder`, pprof encoding,
configuration from ``DD_*`` variables, the collector and exporter interfaces,
the flushing :class:`Scheduler` and the file exporter. Names are imported on
first use, so that importing one submodule does not import them all.
"""

__version__ = "0.1.0"

_EXPORTS = {
    "SAMPLE_TYPES": "profiler_core.events",
    "Frame": "profiler_core.events",
    "Labels": "profiler_core.events",
    "Sample": "profiler_core.events",
    "Stack": "profiler_core.events",
    "ProfilerConfig": "profiler_core.config",
    "load_config": "profiler_core.config",
    "Collector": "profiler_core.interfaces",
    "ExportedProfile": "profiler_core.interfaces",
    "Exporter": "profiler_core.interfaces",
    "Recorder": "profiler_core.recorder",
    "RecorderSnapshot": "profiler_core.recorder",
    "Scheduler": "profiler_core.scheduler",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError("module 'profiler_core' has no attribute %r" % name)
    import importlib

    return getattr(importlib.import_module(module), name)
