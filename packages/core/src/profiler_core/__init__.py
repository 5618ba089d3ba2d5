"""profiler-core: the contract shared by the profiler's collectors and exporters.

Events (:mod:`profiler_core.events`), the :class:`Recorder`, pprof encoding,
configuration from ``DD_*`` variables, the collector and exporter interfaces,
the flushing :class:`Scheduler` and the file exporter.
"""

from profiler_core.config import ProfilerConfig, load_config
from profiler_core.events import SAMPLE_TYPES, Frame, Labels, Sample, Stack
from profiler_core.interfaces import Collector, ExportedProfile, Exporter
from profiler_core.recorder import Recorder, RecorderSnapshot
from profiler_core.scheduler import Scheduler

__version__ = "0.1.0"

__all__ = [
    "SAMPLE_TYPES",
    "Collector",
    "ExportedProfile",
    "Exporter",
    "Frame",
    "Labels",
    "ProfilerConfig",
    "Recorder",
    "RecorderSnapshot",
    "Sample",
    "Scheduler",
    "Stack",
    "load_config",
]
