"""Export merged profiles for other tools: collapsed stacks (flamegraph.pl, inferno) and speedscope JSON."""

from __future__ import annotations

import json
from collections import defaultdict

from profiler.pprof_reader import ProfileSet

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, List, Tuple

SPEEDSCOPE_SCHEMA = "https://www.speedscope.app/file-format-schema.json"
_SPEEDSCOPE_UNITS = {"nanoseconds": "nanoseconds", "bytes": "bytes"}


def frame_label(name: str, filename: str) -> str:
    """How a frame is named in collapsed stacks: ``function (file)``; ``;`` is the separator, so it is replaced."""
    label = "%s (%s)" % (name, filename) if filename else name
    return label.replace(";", ":")


def collapsed(profiles: ProfileSet, sample_type: str) -> "List[str]":
    """``root;...;leaf value`` lines, one per distinct stack, largest first."""
    totals: "Dict[str, int]" = defaultdict(int)
    for sample in profiles.samples:
        value = sample.values.get(sample_type, 0)
        if value:
            path = ";".join(frame_label(name, filename) for name, filename, _line in reversed(sample.frames))
            totals[path or "<no stack>"] += value
    return ["%s %d" % (path, value) for path, value in sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))]


def speedscope(profiles: ProfileSet, sample_types: "List[str]", name: str = "profile") -> dict:
    """A speedscope document with one sampled profile per sample type."""
    frames: "List[dict]" = []
    index: "Dict[Tuple[str, str, int], int]" = {}
    documents = []
    for sample_type in sample_types:
        samples, weights = [], []
        for sample in profiles.samples:
            value = sample.values.get(sample_type, 0)
            if not value:
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
    """Write ``document`` as compact JSON."""
    with open(path, "w", encoding="utf-8") as f:
        json.dump(document, f, separators=(",", ":"))
