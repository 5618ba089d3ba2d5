"""Read pprof files (ours or ddtrace's) into plain samples for the local viewing commands."""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Tuple

from profiler_core.pprof import profile_pb2

FrameKey = Tuple[str, str, int]  # (function, filename, line)


@dataclass
class ProfileSample:
    """One pprof sample: frames leaf first, labels by key, values by sample type."""

    frames: List[FrameKey]
    labels: Dict[str, object]
    values: Dict[str, int]


@dataclass
class ProfileSet:
    """Samples of one or more profiles merged; ``units`` maps each sample type to its unit."""

    samples: List[ProfileSample] = field(default_factory=list)
    units: Dict[str, str] = field(default_factory=dict)
    duration_ns: int = 0

    def types(self) -> List[str]:
        """Sample types in the order first seen."""
        return list(self.units)


ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def zstd_decompress(data: bytes) -> bytes:
    """Decompress zstd (ddtrace writes its pprof files so) with the standard library (3.14+) or ``zstandard``."""
    try:
        from compression import zstd  # type: ignore[import-not-found]  # Python 3.14+

        return zstd.decompress(data)
    except ImportError:
        pass
    try:
        import zstandard
    except ImportError:
        raise ValueError("this profile is zstd-compressed: pip install zstandard (or use Python 3.14+)") from None
    return zstandard.ZstdDecompressor().decompressobj().decompress(data)


def decode_file(data: bytes):
    """Parse pprof bytes: gzip-compressed (ours, Go's), zstd-compressed (ddtrace's) or raw."""
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    elif data[:4] == ZSTD_MAGIC:
        data = zstd_decompress(data)
    return profile_pb2.Profile.FromString(data)


def load(paths: Iterable[str]) -> ProfileSet:
    """Read and merge the pprof files at ``paths``."""
    out = ProfileSet()
    for path in paths:
        with open(path, "rb") as f:
            add_profile(out, decode_file(f.read()))
    return out


def add_profile(out: ProfileSet, profile) -> None:
    """Append one decoded ``Profile`` message to ``out``, resolving ids and strings."""
    s = profile.string_table
    types = [s[t.type] for t in profile.sample_type]
    for t in profile.sample_type:
        out.units.setdefault(s[t.type], s[t.unit])
    functions = {f.id: (s[f.name], s[f.filename]) for f in profile.function}
    locations: Dict[int, List[FrameKey]] = {}
    for loc in profile.location:
        frames = []
        for line in loc.line:  # inlined frames first, caller last
            name, filename = functions.get(line.function_id, ("?", ""))
            frames.append((name, filename, int(line.line)))
        if not frames:
            frames.append(("0x%x" % loc.address, "", 0))
        locations[loc.id] = frames
    for sample in profile.sample:
        frames: List[FrameKey] = []
        for loc_id in sample.location_id:
            frames.extend(locations.get(loc_id, []))
        labels: Dict[str, object] = {}
        for label in sample.label:
            labels[s[label.key]] = s[label.str] if label.str else label.num
        values = {name: int(v) for name, v in zip(types, sample.value) if v}
        out.samples.append(ProfileSample(frames, labels, values))
    out.duration_ns += profile.duration_nanos
