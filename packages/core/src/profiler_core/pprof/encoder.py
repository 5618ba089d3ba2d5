"""Encode a :class:`~profiler_core.recorder.RecorderSnapshot` as a pprof ``Profile`` message."""

from __future__ import annotations

from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from profiler_core.events import CLASS_NAME, SAMPLE_TYPES, Frame
from profiler_core.pprof import profile_pb2
from profiler_core.recorder import RecorderSnapshot


class _StringTable:
    """Deduplicating pprof string table; index 0 is always the empty string."""

    def __init__(self) -> None:
        self.strings: List[str] = [""]
        self._index: Dict[str, int] = {"": 0}

    def __call__(self, s: str) -> int:
        i = self._index.get(s)
        if i is None:
            i = self._index[s] = len(self.strings)
            self.strings.append(s)
        return i


def ordered_sample_types(declared: Iterable[str], present: Iterable[str]) -> List[str]:
    """Sample types to put in a profile: those declared plus those present, known ones in canonical order."""
    wanted = set(declared) | set(present)
    known = [name for name in SAMPLE_TYPES if name in wanted]
    unknown = sorted(wanted - set(SAMPLE_TYPES))
    return known + unknown


def encode_profile(
    snapshot: RecorderSnapshot,
    sample_types: Sequence[str] = (),
    period: Optional[Tuple[str, int]] = None,
    comments: Sequence[str] = (),
) -> bytes:
    """Serialize ``snapshot`` to uncompressed ``profile.proto`` bytes.

    The profile's sample types are ``sample_types`` plus any type present in the
    snapshot, named and ordered as ddtrace does. ``period`` is ``(sample type,
    period)`` for ``period_type``/``period``. A non-zero drop count is reported
    as a comment. Locations and functions are deduplicated; the leaf frame's
    class name, when known, becomes a ``class name`` label.
    """
    present = set()
    for values in snapshot.samples.values():
        present.update(values)
    types = ordered_sample_types(sample_types, present)
    type_index = {name: i for i, name in enumerate(types)}

    strings = _StringTable()
    profile = profile_pb2.Profile()
    for name in types:
        profile.sample_type.add(type=strings(name), unit=strings(SAMPLE_TYPES.get(name, "count")))

    functions: Dict[Tuple[str, str], int] = {}
    locations: Dict[Tuple[str, str, int], int] = {}

    def location_id(frame: Frame) -> int:
        key = (frame.filename, frame.function, frame.lineno)
        loc = locations.get(key)
        if loc is None:
            fkey = (frame.filename, frame.function)
            fid = functions.get(fkey)
            if fid is None:
                fid = functions[fkey] = len(functions) + 1
                profile.function.add(
                    id=fid, name=strings(frame.function), filename=strings(frame.filename)
                )
            loc = locations[key] = len(locations) + 1
            location = profile.location.add(id=loc)
            location.line.add(function_id=fid, line=frame.lineno)
        return loc

    for (stack, labels), values in snapshot.samples.items():
        sample = profile.sample.add()
        sample.location_id.extend([location_id(frame) for frame in stack])
        row = [0] * len(types)
        for name, value in values.items():
            row[type_index[name]] = int(value)
        sample.value.extend(row)
        has_class_label = False
        for key, value in labels:
            if key == CLASS_NAME:
                has_class_label = True
            if isinstance(value, int):
                sample.label.add(key=strings(key), num=value)
            else:
                sample.label.add(key=strings(key), str=strings(str(value)))
        if not has_class_label and stack and stack[0].class_name:
            sample.label.add(key=strings(CLASS_NAME), str=strings(stack[0].class_name))

    profile.time_nanos = snapshot.start_ns
    profile.duration_nanos = snapshot.duration_ns
    if period is not None:
        period_name, period_value = period
        profile.period_type.type = strings(period_name)
        profile.period_type.unit = strings(SAMPLE_TYPES.get(period_name, "count"))
        profile.period = int(period_value)
    all_comments = list(comments)
    if snapshot.dropped:
        all_comments.append("dropped %d samples: recorder full" % snapshot.dropped)
    for comment in all_comments:
        profile.comment.append(strings(comment))
    profile.string_table.extend(strings.strings)
    return profile.SerializeToString()
