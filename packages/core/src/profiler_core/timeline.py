"""Timestamped samples for the timeline: when each sample was taken, kept apart from the aggregate.

With the timeline on (``DD_PROFILING_TIMELINE_ENABLED``, default true, as ddtrace), a sample pushed
with a timestamp is not summed into its ``(stack, labels)`` aggregate but kept on its own, and is
written as its own pprof sample with an ``end_timestamp_ns`` label (nanoseconds since the epoch),
which Datadog's timeline view and ``profiler timeline`` draw. Storage is bounded per period: past
``max_samples`` a timestamped sample is summed into the aggregate as if it had no timestamp (its
values are kept, its moment is not) and counted in ``untimed``.

A sample costs 24 bytes plus 8 per sample type of the period: its stack and labels are held by
reference, its moment and values in typed arrays (the samplers reuse their stack and label tuples,
except where a sample's labels are its own, with a span or an asyncio task: about 100 bytes more).
"""

from __future__ import annotations

import time
from array import array

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Dict, Iterator, List, Mapping, Tuple

#: The label ddtrace puts the sample's moment in (nanoseconds since the epoch).
END_TIMESTAMP_NS = "end_timestamp_ns"
#: Timestamped samples one period keeps (at 100 samples/s, 10 threads for a minute).
DEFAULT_MAX_SAMPLES = 60000


def monotonic_to_epoch_offset() -> int:
    """Nanoseconds to add to a ``time.monotonic_ns()`` reading to get ``time.time_ns()``'s scale."""
    return time.time_ns() - time.monotonic_ns()


class TimedSamples:
    """One period's timestamped samples: iterate for ``((stack, labels), end_ns, values)``.

    ``end_ns`` is in nanoseconds since the epoch; ``values`` is a new dict of the non-zero values.
    """

    __slots__ = ("stacks", "labels", "stamps", "types", "columns", "offset")

    def __init__(self, stacks: "List[tuple]", labels: "List[tuple]", stamps: array, types: "List[str]",
                 columns: "List[array]", offset: int) -> None:
        self.stacks = stacks
        self.labels = labels
        self.stamps = stamps
        self.types = types
        self.columns = columns
        self.offset = offset

    def __len__(self) -> int:
        return len(self.stacks)

    def __bool__(self) -> bool:
        return bool(self.stacks)

    def __iter__(self) -> "Iterator[Tuple[tuple, int, Dict[str, int]]]":
        types, columns, offset, stamps = self.types, self.columns, self.offset, self.stamps
        for i, (stack, labels) in enumerate(zip(self.stacks, self.labels)):
            values = {}
            for name, column in zip(types, columns):
                if column[i]:
                    values[name] = column[i]
            yield (stack, labels), stamps[i] + offset, values

    def present_types(self) -> "List[str]":
        """The sample types some sample has a non-zero value of."""
        return [name for name, column in zip(self.types, self.columns) if any(column)]

    def totals(self) -> "Dict[str, int]":
        """Sum of each sample type over the samples."""
        return {name: sum(column) for name, column in zip(self.types, self.columns)}

    def relabelled(self, relabel: "Callable[[tuple], tuple]") -> "TimedSamples":
        """The same samples, each key's labels replaced by ``relabel(labels)`` (called once per
        distinct labels object)."""
        done: "Dict[int, tuple]" = {}
        out = []
        for labels in self.labels:
            new = done.get(id(labels))
            if new is None:
                new = done[id(labels)] = relabel(labels)
            out.append(new)
        return TimedSamples(self.stacks, out, self.stamps, self.types, self.columns, self.offset)


EMPTY = TimedSamples([], [], array("q"), [], [], 0)


class Timeline:
    """A bounded store of one period's timestamped samples; not thread-safe (the recorder locks it)."""

    def __init__(self, max_samples: int = DEFAULT_MAX_SAMPLES) -> None:
        if max_samples < 1:
            raise ValueError("max_samples must be at least 1")
        self.max_samples = max_samples
        self._reset()

    def _reset(self) -> None:
        self._stacks: "List[tuple]" = []
        self._labels: "List[tuple]" = []
        self._stamps = array("q")
        self._types: "List[str]" = []
        self._index: "Dict[str, int]" = {}
        self._columns: "List[array]" = []

    def __len__(self) -> int:
        return len(self._stacks)

    def add(self, stack: tuple, labels: tuple, monotonic_ns: int, values: "Mapping[str, int]") -> bool:
        """Keep ``values`` of ``(stack, labels)`` taken at ``monotonic_ns`` (``time.monotonic_ns()``'s
        clock); False, keeping nothing, when the period is full."""
        n = len(self._stacks)
        if n >= self.max_samples:
            return False
        converted = [(name, int(value)) for name, value in values.items()]  # before any column grows
        index, columns = self._index, self._columns
        for name, value in converted:
            j = index.get(name)
            if j is None:
                j = index[name] = len(self._types)
                self._types.append(name)
                columns.append(array("q", bytes(8 * n)))  # zeros for the samples before
            columns[j].append(value)
        for column in columns:
            if len(column) == n:  # a type this sample has no value of
                column.append(0)
        self._stacks.append(stack)
        self._labels.append(labels)
        self._stamps.append(monotonic_ns)
        return True

    def take(self) -> TimedSamples:
        """What was kept since the last take; starts a new period. The moments are put on the epoch
        with the clocks' offset read now: a step of the wall clock (NTP) or a suspend shifts at
        most the period it happens in."""
        if not self._stacks:
            return EMPTY
        taken = TimedSamples(self._stacks, self._labels, self._stamps, self._types, self._columns,
                             monotonic_to_epoch_offset())
        self._reset()
        return taken
