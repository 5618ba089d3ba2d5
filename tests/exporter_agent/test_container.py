"""The container id is read from /proc/self/cgroup without re, finding what ddtrace's pattern finds."""

from __future__ import annotations

import re

from hypothesis import example, given, settings, strategies as st

from profiler_agent.container import container_id

# ddtrace's patterns, which this project used until re left the start-up (the reference here).
_UUID = r"[0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12}"
_CONTAINER_ID = re.compile(r"(?:.+)?(%s|[0-9a-f]{64}|[0-9a-f]{32}-\d+)(?:\.scope)?$" % _UUID)
_LINE = re.compile(r"^(\d+):([^:]*):(.+)$")


def reference(cgroup_text):
    for line in cgroup_text.splitlines():
        match = _LINE.match(line.strip())
        if match:
            found = _CONTAINER_ID.match(match.group(3).rsplit("/", 1)[-1])
            if found:
                return found.group(1)
    return None


hex_runs = st.text("0123456789abcdef", min_size=0, max_size=70)
pieces = st.sampled_from(["-", "_", ".scope", "docker-", "crio-", "/", ":", "1", "a", "x", "-123", "\n", " "])
names = st.lists(hex_runs | pieces, max_size=8).map("".join)


@settings(max_examples=2000, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["0", "12", "x", ""]), st.sampled_from(["", "memory", "cpu:x"]), names), max_size=3))
@example([("0", "", "/system.slice/docker-" + "b" * 64 + ".scope")])
@example([("9", "perf_event", "/ecs/" + "c" * 32 + "-" + "1" * 70)])
@example([("1", "", "/x-" + "a" * 64 + "-" + "b" * 32 + "-12")])
@example([("1", "", "/" + "a" * 8 + "-" + "a" * 4 + "_" + "a" * 4 + "-" + "a" * 4 + "-" + "a" * 12)])
def test_same_id_as_ddtrace_pattern(lines):
    text = "\n".join("%s:%s:%s" % line for line in lines)
    assert container_id(text) == reference(text)
