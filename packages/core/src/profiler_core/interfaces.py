"""The collector and exporter interfaces every package implements.

Collectors are found through the ``profiler.collectors`` entry point group and
exporters through ``profiler.exporters``; each entry point names a class
implementing the matching interface below.
"""

from __future__ import annotations

import abc
TYPE_CHECKING = False  # typing costs milliseconds to import in every profiled process
if TYPE_CHECKING:
    from typing import ClassVar, Dict, Optional, Tuple


if TYPE_CHECKING:
    from profiler_core.config import ProfilerConfig
    from profiler_core.recorder import Recorder


class Collector(abc.ABC):
    """Something that observes the program and pushes samples into a :class:`Recorder`.

    Lifecycle: ``start()`` then, any number of times, ``snapshot()`` (called just
    before each flush, for collectors that report state rather than events, such
    as the live heap), then ``stop()``. ``start`` and ``stop`` are called from one
    thread at a time; neither may raise into the application once started, so a
    collector logs its own runtime errors. After ``os.fork`` the child calls
    ``after_fork_in_child()``: the collector must leave no state pointing at the
    parent's threads and keep collecting in the child.
    """

    #: Name used in logs, the launcher and the ``profiler.collectors`` entry point.
    name: ClassVar[str] = ""
    #: Sample types this collector produces; they appear in every profile while it runs.
    sample_types: ClassVar[Tuple[str, ...]] = ()

    def __init__(self, recorder: Recorder, config: ProfilerConfig) -> None:
        self.recorder = recorder
        self.config = config

    @classmethod
    def is_enabled(cls, config: ProfilerConfig) -> bool:
        """Whether the configuration asks for this collector (e.g. ``DD_PROFILING_LOCK_ENABLED``)."""
        return True

    @abc.abstractmethod
    def start(self) -> None:
        """Begin collecting."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop collecting and undo every change made to the program (patched types, hooks, threads)."""

    def snapshot(self) -> None:
        """Push periodic state into the recorder just before a flush; events-only collectors do nothing."""

    def after_fork_in_child(self) -> None:
        """Restart collection in a forked child; the default does nothing."""

    def stats(self) -> Dict[str, float]:
        """The collector's own figures (samples dropped, errors...) by name; the default has none."""
        return {}

    def sampling_rates(self) -> Dict[str, float]:
        """Fraction of events each of its sample types counts, for types whose samples count
        sampled events one each (lock and exception samples, as ddtrace's); recorded in every
        profile (:mod:`profiler_core.sampling`) for readers' estimates. Empty (the default) when
        its values are whole counts or already estimates."""
        return {}


class ExportedProfile:
    """One encoded profile period, handed to every exporter.

    ``pprof`` is the uncompressed serialized ``profile.proto``; exporters compress
    as their destination expects. ``seq`` counts profiles of this process from 0.
    """

    __slots__ = ("pprof", "start_ns", "end_ns", "seq", "pid", "tags", "endpoint_counts")

    def __init__(
        self,
        pprof: bytes,
        start_ns: int,
        end_ns: int,
        seq: int,
        pid: int,
        tags: Optional[Dict[str, str]] = None,
        endpoint_counts: Optional[Dict[str, int]] = None,
    ) -> None:
        self.pprof = pprof
        self.start_ns = start_ns
        self.end_ns = end_ns
        self.seq = seq
        self.pid = pid
        self.tags = dict(tags or {})
        self.endpoint_counts = dict(endpoint_counts or {})

    def __repr__(self) -> str:
        return "ExportedProfile(seq=%d, pid=%d, %d bytes)" % (self.seq, self.pid, len(self.pprof))


class Exporter(abc.ABC):
    """A destination for profiles: a directory, a Datadog agent.

    ``export`` is called from the profiler's scheduler thread, never from the
    application's; it may block up to the exporter's own timeout, and any error it
    raises is logged by the scheduler and never reaches the application.
    """

    name: ClassVar[str] = ""

    def __init__(self, config: ProfilerConfig) -> None:
        self.config = config

    @classmethod
    def is_enabled(cls, config: ProfilerConfig) -> bool:
        """Whether the configuration asks for this exporter."""
        return True

    @abc.abstractmethod
    def export(self, profile: ExportedProfile) -> None:
        """Deliver ``profile`` (or queue it for a later attempt)."""

    def stop(self, timeout: float) -> None:
        """Deliver what is pending within ``timeout`` seconds and release resources."""

    def after_fork_in_child(self) -> None:
        """Drop state inherited from the parent (pending uploads, sessions); the default does nothing."""

    def stats(self) -> Dict[str, float]:
        """The exporter's own figures (profiles delivered, dropped, failed attempts...) by name; the default has none."""
        return {}
