"""Export merged profiles for other tools: collapsed stacks (flamegraph.pl, inferno) and speedscope JSON."""

from __future__ import annotations

import json
from collections import defaultdict

from profiler.pprof_reader import ProfileSet
from profiler.terminal import printable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, List, Tuple

SPEEDSCOPE_SCHEMA = "https://www.speedscope.app/file-format-schema.json"
_SPEEDSCOPE_UNITS = {"nanoseconds": "nanoseconds", "bytes": "bytes"}


def frame_label(name: str, filename: str) -> str:
    """How a frame is named in collapsed stacks: ``function (file)``; ``;`` is the separator, so it is replaced,
    and control characters are escaped (a newline would split the line, an escape sequence reach a terminal)."""
    label = "%s (%s)" % (name, filename) if filename else name
    return printable(label.replace(";", ":"))


def collapsed(profiles: ProfileSet, sample_type: str) -> "List[str]":
    """``root;...;leaf value`` lines, one per distinct stack, largest first."""
    totals: "Dict[str, int]" = defaultdict(int)
    labels: "Dict[Tuple[str, str, int], str]" = {}
    for sample in profiles.samples:
        value = sample.values.get(sample_type, 0)
        if value:
            parts = []
            for frame in reversed(sample.frames):
                label = labels.get(frame)
                if label is None:
                    label = labels[frame] = frame_label(frame[0], frame[1])
                parts.append(label)
            totals[";".join(parts) or "<no stack>"] += value
    return ["%s %d" % (path, value) for path, value in sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))]


def speedscope(profiles: ProfileSet, sample_types: "List[str]", name: str = "profile") -> dict:
    """A speedscope document with one sampled profile per sample type (a sample's stack list is one
    object shared by the profiles of every type it has a value of)."""
    frames: "List[dict]" = []
    index: "Dict[Tuple[str, str, int], int]" = {}
    wanted = set(sample_types)
    stacks: "List[List[int]]" = []
    for sample in profiles.samples:
        if not wanted.intersection(sample.values):
            stacks.append([])
            continue
        stack = []
        for key in reversed(sample.frames):  # speedscope wants root first
            i = index.get(key)
            if i is None:
                i = index[key] = len(frames)
                entry = {"name": key[0]}
                if key[1]:
                    entry["file"] = key[1]
                    entry["line"] = key[2]
                frames.append(entry)
            stack.append(i)
        stacks.append(stack)
    documents = []
    for sample_type in sample_types:
        samples, weights = [], []
        for sample, stack in zip(profiles.samples, stacks):
            value = sample.values.get(sample_type, 0)
            if value:
                samples.append(stack)
                weights.append(value)
        documents.append(
            {
                "type": "sampled",
                "name": "%s %s" % (name, sample_type),
                "unit": _SPEEDSCOPE_UNITS.get(profiles.units.get(sample_type, ""), "none"),
                "startValue": 0,
                "endValue": sum(weights),
                "samples": samples,
                "weights": weights,
            }
        )
    return {
        "$schema": SPEEDSCOPE_SCHEMA,
        "shared": {"frames": frames},
        "profiles": documents,
        "name": name,
        "exporter": "profiler",
    }


def write_json(document: dict, path: str) -> None:
    """Write ``document`` as compact JSON, a top-level entry (or an element of a top-level list) at
    a time, so a large document is never one string in memory."""
    dumps = json.JSONEncoder(separators=(",", ":")).encode
    with open(path, "w", encoding="utf-8") as f:
        f.write("{")
        for n, (key, value) in enumerate(document.items()):
            f.write("%s%s:" % ("," if n else "", dumps(key)))
            if isinstance(value, list):
                f.write("[")
                for i, item in enumerate(value):
                    if i:
                        f.write(",")
                    f.write(dumps(item))
                f.write("]")
            else:
                f.write(dumps(value))
        f.write("}")
