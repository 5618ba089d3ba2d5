"""Encode a :class:`~profiler_core.recorder.RecorderSnapshot` as a pprof ``Profile`` message."""

from __future__ import annotations

TYPE_CHECKING = False  # typing (and the re it imports) would add milliseconds to every start
if TYPE_CHECKING:
    from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from profiler_core.events import CLASS_NAME, SAMPLE_TYPES, Frame
from profiler_core.pprof.wire import bytes_field, int_field, message_field, packed_field, string_field, varint
from profiler_core.recorder import RecorderSnapshot
from profiler_core.timeline import END_TIMESTAMP_NS


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


# What a viewer opens a profile on (``go tool pprof`` otherwise picks the last sample type).
DEFAULT_SAMPLE_TYPE_ORDER = ("cpu-time", "wall-time", "alloc-space", "lock-acquire-wait", "exception-samples")


def default_sample_type(types: Sequence[str]) -> Optional[str]:
    """The sample type a viewer should show first: CPU time, else wall time, else the first one."""
    for name in DEFAULT_SAMPLE_TYPE_ORDER:
        if name in types:
            return name
    return types[0] if types else None


def encode_profile(
    snapshot: RecorderSnapshot,
    sample_types: Sequence[str] = (),
    period: Optional[Tuple[str, int]] = None,
    comments: Sequence[str] = (),
) -> bytes:
    """Serialize ``snapshot`` to uncompressed ``profile.proto`` bytes.

    The profile's sample types are ``sample_types`` plus any type present in the
    snapshot, named and ordered as ddtrace does. ``period`` is ``(sample type,
    period)`` for ``period_type``/``period`` (by default the default sample type and 1, as ddtrace); ``default_sample_type`` is CPU time
    where present (see :func:`default_sample_type`). A non-zero drop count is reported
    as a comment. Locations and functions are deduplicated; the leaf frame's
    class name, when known, becomes a ``class name`` label. Each timestamped sample
    of the snapshot (the timeline) is a sample of its own, with an ``end_timestamp_ns``
    label, as ddtrace writes them.
    """
    present = set(snapshot.timed.present_types())
    for values in snapshot.samples.values():
        present.update(values)
    types = ordered_sample_types(sample_types, present)
    type_index = {name: i for i, name in enumerate(types)}
    strings = _StringTable()
    # Fields of Profile, by number (profile.proto), written in that order as protobuf does.
    sample_type_fields = [
        message_field(1, int_field(1, strings(name)) + int_field(2, strings(SAMPLE_TYPES.get(name, "count"))))
        for name in types
    ]
    function_fields: List[bytes] = []
    location_fields: List[bytes] = []
    functions: Dict[Tuple[str, str], int] = {}
    locations: Dict[Tuple[str, str, int], bytes] = {}  # the location's id, as a varint

    def location_id(frame: Frame) -> bytes:
        key = (frame.filename, frame.function, frame.lineno)
        encoded = locations.get(key)
        if encoded is None:
            fkey = (frame.filename, frame.function)
            fid = functions.get(fkey)
            if fid is None:
                fid = functions[fkey] = len(functions) + 1
                function_fields.append(message_field(5, int_field(1, fid) + int_field(2, strings(frame.function))
                                                     + int_field(4, strings(frame.filename))))
            loc = len(locations) + 1
            encoded = locations[key] = varint(loc)
            line = int_field(1, fid) + int_field(2, frame.lineno)
            location_fields.append(message_field(4, int_field(1, loc) + message_field(4, line)))
        return encoded

    sample_fields: List[bytes] = []
    class_key = -1
    # Stacks and label sets recur across samples (the samplers reuse the same objects): each is
    # encoded once per profile, by identity (every one stays alive until the end of this call).
    stack_bytes: Dict[int, bytes] = {}
    label_bytes: Dict[int, Tuple[bytes, bool]] = {}
    width = len(types)
    rows: Dict[Tuple[int, ...], bytes] = {}
    timestamp_key = -1

    def add_sample(stack, labels, values, end_ns=None) -> None:
        nonlocal class_key, timestamp_key
        encoded_stack = stack_bytes.get(id(stack))
        if encoded_stack is None:
            ids = b"".join([location_id(frame) for frame in stack])
            encoded_stack = stack_bytes[id(stack)] = bytes_field(1, ids) if ids else b""
        row = [0] * width
        for name, value in values.items():
            row[type_index[name]] = int(value)
        key = tuple(row)
        encoded_row = rows.get(key)
        if encoded_row is None:
            encoded_row = rows[key] = packed_field(2, row)
        cached = label_bytes.get(id(labels))
        if cached is None:
            parts = []
            has_class_label = False
            for key, value in labels:
                if key == CLASS_NAME:
                    has_class_label = True
                if isinstance(value, int):
                    parts.append(message_field(3, int_field(1, strings(key)) + int_field(3, value)))
                else:
                    parts.append(message_field(3, int_field(1, strings(key)) + int_field(2, strings(str(value)))))
            cached = label_bytes[id(labels)] = (b"".join(parts), has_class_label)
        encoded_labels, has_class_label = cached
        if not has_class_label and stack and stack[0].class_name:
            if class_key < 0:
                class_key = strings(CLASS_NAME)
            encoded_labels += message_field(3, int_field(1, class_key) + int_field(2, strings(stack[0].class_name)))
        if end_ns is not None:
            if timestamp_key < 0:
                timestamp_key = strings(END_TIMESTAMP_NS)
            encoded_labels += message_field(3, int_field(1, timestamp_key) + int_field(3, end_ns))
        sample_fields.append(message_field(2, encoded_stack + encoded_row + encoded_labels))

    for (stack, labels), values in snapshot.samples.items():
        add_sample(stack, labels, values)
    for (stack, labels), end_ns, values in snapshot.timed:
        add_sample(stack, labels, values, end_ns)

    tail = [int_field(9, snapshot.start_ns), int_field(10, snapshot.duration_ns)]
    default = default_sample_type(types)
    if period is None and default is not None:
        period = (default, 1)  # as ddtrace: tools that need a period type (go tool pprof -top) get one
    if period is not None:
        period_name, period_value = period
        tail.append(message_field(11, int_field(1, strings(period_name))
                                  + int_field(2, strings(SAMPLE_TYPES.get(period_name, "count")))))
        tail.append(int_field(12, int(period_value)))
    default_index = strings(default) if default is not None else 0
    all_comments = list(comments)
    if snapshot.dropped:
        all_comments.append("dropped %d samples: recorder full" % snapshot.dropped)
    if snapshot.untimed:
        all_comments.append("%d samples without a timestamp: timeline full" % snapshot.untimed)
    tail.append(packed_field(13, [strings(comment) for comment in all_comments]))
    tail.append(int_field(14, default_index))
    return b"".join(
        sample_type_fields + sample_fields + location_fields + function_fields
        + [string_field(6, text) for text in strings.strings] + tail
    )
