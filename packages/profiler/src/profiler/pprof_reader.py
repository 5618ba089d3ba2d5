"""Read pprof files (ours or ddtrace's) into plain samples for the local viewing commands.

Files come from anywhere, so reading one is bounded and checked: at most
``max_bytes`` of profile data per file once decompressed (``DEFAULT_MAX_BYTES``,
256 MiB, far above what a profiler writes; a gzip or zstd bomb stops there), and
every index the profile holds (strings, functions, locations, values per sample
type) is checked. Whatever is wrong with a file is one :class:`ProfileError`
naming it; nothing else escapes :func:`load`.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass, field
from typing import BinaryIO, Dict, Iterable, List, Optional, Set, Tuple

from profiler_core.pprof import profile_pb2
from profiler_core.sampling import rates_from_comments

FrameKey = Tuple[str, str, int]  # (function, filename, line)

MIB = 1 << 20
DEFAULT_MAX_BYTES = 256 * MIB
CHUNK = 1 * MIB
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
GZIP_MAGIC = b"\x1f\x8b"


class ProfileError(Exception):
    """A file that cannot be read as a profile. ``str()`` is one line: ``PATH: what is wrong``."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__("%s: %s" % (path, reason))
        self.path = path
        self.reason = reason


@dataclass
class ProfileSample:
    """One pprof sample: frames leaf first, labels by key, values by sample type.

    Samples with the same stack (or labels) share one ``frames`` tuple (or
    ``labels`` dict): treat them as read-only.
    """

    __slots__ = ("frames", "labels", "values")
    frames: Tuple[FrameKey, ...]
    labels: Dict[str, object]
    values: Dict[str, int]


@dataclass
class ProfileSet:
    """Samples of one or more profiles merged; ``units`` maps each sample type to its unit,
    ``label_keys`` holds every label key seen, ``paths`` the files read."""

    samples: List[ProfileSample] = field(default_factory=list)
    units: Dict[str, str] = field(default_factory=dict)
    #: Sample types whose values count sampled events (lock, exception): each is multiplied by
    #: the inverse of the sampling rate the profile records, for an estimate; type -> factor.
    estimated: Dict[str, float] = field(default_factory=dict)
    duration_ns: int = 0
    label_keys: Set[str] = field(default_factory=set)
    paths: List[str] = field(default_factory=list)

    def types(self) -> List[str]:
        """Sample types in the order first seen."""
        return list(self.units)


class _TooLarge(Exception):
    pass


def _read_bounded(stream: BinaryIO, max_bytes: int) -> bytearray:
    """All of ``stream``, refusing more than ``max_bytes`` (never holding more than that plus a chunk)."""
    buf = bytearray()
    while True:
        chunk = stream.read(min(CHUNK, max_bytes - len(buf) + 1))
        if not chunk:
            return buf
        buf += chunk
        if len(buf) > max_bytes:
            raise _TooLarge()


def _zstd_stream(raw: BinaryIO) -> BinaryIO:
    """A reader of the zstd stream in ``raw``: the standard library's (3.14+) or ``zstandard``'s."""
    try:
        from compression import zstd  # type: ignore[import-not-found]  # Python 3.14+

        return zstd.ZstdFile(raw)
    except ImportError:
        pass
    try:
        import zstandard
    except ImportError:
        raise ValueError("this profile is zstd-compressed: pip install zstandard (or use Python 3.14+)") from None
    return zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)


def read_file(path: str, max_bytes: int = DEFAULT_MAX_BYTES) -> "bytes | bytearray":
    """The uncompressed pprof bytes of the file at ``path`` (gzip, zstd or raw), at most ``max_bytes``."""
    kind = ""
    try:
        with open(path, "rb") as raw:
            magic = raw.read(4)
            raw.seek(0)
            if not magic:
                raise ProfileError(path, "empty file, not a pprof profile")
            if magic[:2] == GZIP_MAGIC:
                kind, stream = "gzip", gzip.GzipFile(fileobj=raw, mode="rb")
            elif magic == ZSTD_MAGIC:
                kind, stream = "zstd", _zstd_stream(raw)
            else:
                if os.fstat(raw.fileno()).st_size > max_bytes:
                    raise _TooLarge()
                stream = raw
            return _read_bounded(stream, max_bytes)
    except ProfileError:
        raise
    except _TooLarge:
        raise ProfileError(
            path,
            "more than %s of profile data%s (the limit: raise it with --max-size MIB or PROFILER_MAX_SIZE_MIB)"
            % (_mib(max_bytes), " once %s-decompressed" % kind if kind else ""),
        ) from None
    except (OSError, EOFError, ValueError, MemoryError) as exc:
        raise ProfileError(path, _one_line(exc)) from None
    except Exception as exc:  # a decompressor's own error type (zlib.error, zstandard.ZstdError, ...)
        raise ProfileError(path, "cannot decompress: %s" % _one_line(exc)) from None


def _mib(n: int) -> str:
    return "%g MiB" % (n / MIB)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return " ".join(text.split())


def decode(path: str, data: "bytes | bytearray"):
    """Parse pprof bytes into a ``Profile`` message, or raise :class:`ProfileError` naming ``path``."""
    try:
        return profile_pb2.Profile.FromString(memoryview(data))
    except Exception as exc:  # DecodeError, or RecursionError on nested unknown groups
        raise ProfileError(path, "not a pprof profile (%s)" % _one_line(exc)) from None


def load(paths: Iterable[str], max_bytes: int = DEFAULT_MAX_BYTES) -> ProfileSet:
    """Read and merge the pprof files at ``paths``; :class:`ProfileError` for the first bad one."""
    out = ProfileSet()
    for path in paths:
        profile = decode(path, read_file(path, max_bytes))
        add_profile(out, profile, path)
        out.paths.append(path)
    return out


class _Strings:
    """The string table with every lookup checked."""

    def __init__(self, path: str, table) -> None:
        self.path = path
        self.table = list(table)
        if self.table and self.table[0] != "":
            raise ProfileError(path, "string table does not start with the empty string")

    def __call__(self, index: int, what: str) -> str:
        if 0 <= index < len(self.table):
            return self.table[index]
        raise ProfileError(
            self.path, "%s refers to string %d, but the string table has %d entries" % (what, index, len(self.table))
        )


def add_profile(out: ProfileSet, profile, path: str = "<profile>") -> None:
    """Append one decoded ``Profile`` message to ``out``, resolving ids and strings (checked:
    :class:`ProfileError` naming ``path`` for a dangling one)."""
    s = _Strings(path, profile.string_table)
    types = [s(t.type, "sample type") for t in profile.sample_type]
    rates = rates_from_comments(s(c, "a comment") for c in profile.comment)
    scale = {name: 1.0 / rates[name] for name in types if name in rates}
    out.estimated.update(scale)
    for t in profile.sample_type:
        out.units.setdefault(s(t.type, "sample type"), s(t.unit, "sample type unit"))
    functions: Dict[int, Tuple[str, str]] = {}
    for f in profile.function:
        functions[f.id] = (s(f.name, "function %d's name" % f.id), s(f.filename, "function %d's file" % f.id))
    locations: Dict[int, Tuple[FrameKey, ...]] = {}
    single: Dict[int, FrameKey] = {}  # the locations of exactly one frame: most, and the fast path
    for loc in profile.location:
        frames = []
        for line in loc.line:  # inlined frames first, caller last
            named = functions.get(line.function_id)
            if named is None:
                raise ProfileError(path, "location %d refers to function %d, which is not defined" % (loc.id, line.function_id))
            frames.append((named[0], named[1], int(line.line)))
        if not frames:
            frames.append(("0x%x" % loc.address, "", 0))
        locations[loc.id] = tuple(frames)
        if len(frames) == 1:
            single[loc.id] = frames[0]
        else:
            single.pop(loc.id, None)
    frame_of = single.__getitem__

    ntypes = len(types)
    label_sets: Dict[Tuple[Tuple[int, int, int], ...], Dict[str, object]] = {}
    append = out.samples.append
    for sample in profile.sample:
        ids = sample.location_id
        try:
            frames_t = tuple(map(frame_of, ids))
        except KeyError:  # a location of several frames (inlined), or a missing one
            frames_t = _stack(path, ids, locations)
        if sample.label:
            lkey = tuple((label.key, label.str, label.num) for label in sample.label)
            labels = label_sets.get(lkey)
            if labels is None:
                labels = label_sets[lkey] = {}
                for key, string, num in lkey:
                    name = s(key, "a label key")
                    labels[name] = s(string, "label %r" % name) if string else num
                out.label_keys.update(labels)
        else:
            labels = _NO_LABELS
        raw = sample.value
        if len(raw) != ntypes:
            raise ProfileError(path, "a sample has %d values for %d sample types" % (len(raw), ntypes))
        values = {name: v for name, v in zip(types, raw) if v}
        if scale:
            for name in scale.keys() & values.keys():
                values[name] = int(round(values[name] * scale[name]))
        append(ProfileSample(frames_t, labels, values))
    out.duration_ns += max(0, profile.duration_nanos)


_NO_LABELS: Dict[str, object] = {}


def _stack(path: str, ids, locations: Dict[int, Tuple[FrameKey, ...]]) -> Tuple[FrameKey, ...]:
    frames: List[FrameKey] = []
    for loc_id in ids:
        loc = locations.get(loc_id)
        if loc is None:
            raise ProfileError(path, "a sample refers to location %d, which is not defined" % loc_id)
        frames.extend(loc)
    return tuple(frames)


def max_bytes_from(option_mib: Optional[float], env_value: Optional[str]) -> Tuple[int, Optional[str]]:
    """The per-file size limit in bytes from ``--max-size`` (MiB, wins) or ``PROFILER_MAX_SIZE_MIB``,
    and a warning when the environment variable's value is not a positive number (the default is used)."""
    if option_mib is not None:
        return int(option_mib * MIB), None
    if env_value is None or not env_value.strip():
        return DEFAULT_MAX_BYTES, None
    try:
        mib = float(env_value)
        if not mib > 0 or mib == float("inf"):
            raise ValueError
    except ValueError:
        return DEFAULT_MAX_BYTES, "PROFILER_MAX_SIZE_MIB=%r is not a positive number of MiB; using %s" % (
            env_value, _mib(DEFAULT_MAX_BYTES))
    return int(mib * MIB), None
