"""Reading pprof output back in tests: decode, and sum values by sample type, function, label."""

from __future__ import annotations

import glob
import gzip
import os
from collections import defaultdict
from typing import Dict, List, Optional

from profiler_core.pprof import encode_profile, profile_pb2
from profiler_core.recorder import Recorder


def write_profile(path, pushes) -> str:
    """Write a gzip pprof file of ``pushes`` (``(stack, labels, values)`` each), as the file exporter does."""
    recorder = Recorder()
    for stack, labels, values in pushes:
        recorder.push(stack, labels, values)
    path.write_bytes(gzip.compress(encode_profile(recorder.flush())))
    return str(path)


def read_profile(path: str):
    """Decode a gzip-compressed (or raw) pprof file."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    return profile_pb2.Profile.FromString(data)


def profile_files(directory: str) -> List[str]:
    """The pprof files in ``directory``, oldest sequence number first."""
    return sorted(glob.glob(os.path.join(directory, "*.pprof")), key=lambda p: (len(p), p))


class Decoded:
    """A decoded profile with the string table and ids resolved."""

    def __init__(self, profile) -> None:
        self.profile = profile
        s = profile.string_table
        self.strings = list(s)
        self.types = [(s[t.type], s[t.unit]) for t in profile.sample_type]
        self.functions = {f.id: (s[f.name], s[f.filename]) for f in profile.function}
        self.locations = {}
        for loc in profile.location:
            line = loc.line[0]
            name, filename = self.functions[line.function_id]
            self.locations[loc.id] = (filename, name, line.line)

    def type_index(self, name: str) -> int:
        return [t for t, _ in self.types].index(name)

    def samples(self):
        """(stack as [(filename, function, line)] leaf first, labels dict, values dict) per sample."""
        s = self.strings
        names = [t for t, _ in self.types]
        for sample in self.profile.sample:
            stack = [self.locations[i] for i in sample.location_id]
            labels = {s[l.key]: (s[l.str] if l.str else l.num) for l in sample.label}
            values = dict(zip(names, sample.value))
            yield stack, labels, values

    def total(self, sample_type: str, label: Optional[Dict[str, object]] = None) -> int:
        out = 0
        for _stack, labels, values in self.samples():
            if label and any(labels.get(k) != v for k, v in label.items()):
                continue
            out += values.get(sample_type, 0)
        return out

    def by_function(self, sample_type: str, inclusive: bool = True, label=None) -> Dict[str, int]:
        """Sum of ``sample_type`` per function name (inclusive: every function on the stack, once)."""
        out: Dict[str, int] = defaultdict(int)
        for stack, labels, values in self.samples():
            if label and any(labels.get(k) != v for k, v in label.items()):
                continue
            v = values.get(sample_type, 0)
            frames = stack if inclusive else stack[:1]
            for name in {f[1] for f in frames}:
                out[name] += v
        return dict(out)


def decode(path: str) -> Decoded:
    return Decoded(read_profile(path))
