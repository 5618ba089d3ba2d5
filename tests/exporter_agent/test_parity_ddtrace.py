"""Datadog parity (issue #23): the same workload under ddtrace 4.16 and under this project, both
uploading to Datadog's ``ddapm-test-agent`` on 127.0.0.1, compared field by field.

What must match: the HTTP headers and multipart parts an agent relies on, the event's keys, the
tags (values where they mean the same), sample types and units, label keys and kinds, and the
totals of the program's own work within sampling tolerance. What differs is listed here, each
with its reason, and in the README ("Parity with ddtrace").
"""

import json
import os
import subprocess
import sys

import pytest

from profiler_core.pprof import profile_pb2

WORKLOAD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "parity_workload.py")

pytestmark = pytest.mark.skipif(
    sys.version_info[:2] not in ((3, 11), (3, 12)),
    reason="the parity run installs ddtrace for 3.11 and 3.12 (3.12: ddtrace records exceptions)",
)

# Known differences, with their reasons (README: "Parity with ddtrace").
PARTS_ONLY_DDTRACE = {"code-provenance.json"}  # not produced yet: the UI falls back to file paths
EVENT_KEYS_ONLY_DDTRACE = {"internal"}  # ddtrace's own sampler figures (libdatadog internals)
LABELS_ONLY_DDTRACE = {"allocator domain"}  # ddtrace's allocator label
LABELS_ONLY_OURS = {"class name", "exception type"}  # leaf frame's class; ddtrace has exception type only on 3.12+
CONFIG_WORDS_ONLY_DDTRACE = {"exp", "dd"}  # "exp_dd": ddtrace's libdatadog exporter


def run_under(agent, cmd, env):
    """The workload's last upload, and the CPU seconds each of its threads used (ground truth)."""
    agent.clear()
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    uploads = agent.uploads()
    assert uploads, result.stderr[-2000:]
    return uploads[-1], json.loads(result.stdout.strip().splitlines()[-1])


def summary(upload):
    """Sample types and units, label keys and kinds, and totals of the program's own parts."""
    profile = profile_pb2.Profile.FromString(upload.pprof_bytes())
    st = profile.string_table
    types = [st[t.type] for t in profile.sample_type]
    units = {st[t.type]: st[t.unit] for t in profile.sample_type}
    functions = {f.id: st[f.name] for f in profile.function}
    location = {loc.id: functions[loc.line[0].function_id] for loc in profile.location if loc.line}
    kinds, parts = {}, {}
    # Timeline: wall-time samples, and those of them stamped with a moment inside the profile's period
    start, end = profile.time_nanos, profile.time_nanos + profile.duration_nanos
    parts["timeline"] = {"wall-samples": 0, "stamped": 0, "lock-samples": 0, "lock-stamped": 0}

    def add(key, type_, value):
        acc = parts.setdefault(key, {})
        acc[type_] = acc.get(type_, 0) + value

    for sample in profile.sample:
        labels = {}
        for label in sample.label:
            kinds.setdefault(st[label.key], set()).add("str" if label.str else "num")
            labels[st[label.key]] = st[label.str] if label.str else label.num
        names = {location.get(i) for i in sample.location_id}
        stamp = labels.get("end_timestamp_ns")
        stamped = isinstance(stamp, int) and start <= stamp <= end + 10**9
        for type_, count_key, stamped_key in (("wall-time", "wall-samples", "stamped"),
                                              ("lock-acquire", "lock-samples", "lock-stamped")):
            if type_ in types and sample.value[types.index(type_)]:
                parts["timeline"][count_key] += 1
                parts["timeline"][stamped_key] += stamped
        for type_, value in zip(types, sample.value):
            if not value:
                continue
            add("all", type_, value)
            if labels.get("thread name") in ("burn", "sleeper"):
                add(labels["thread name"], type_, value)
            if "allocator" in names:
                add("allocator", type_, value)
            if "raiser" in names:
                add("raiser", type_, value)
            lock_name = labels.get("lock name", "")
            if lock_name.startswith("parity_workload.py:"):
                add("lock " + lock_name.rsplit(":", 1)[-1], type_, value)
    return units, kinds, parts


def close(a, b, tolerance):
    return b > 0 and abs(a - b) <= tolerance * b


def test_the_same_workload_reaches_the_agent_as_ddtrace_sends_it(tmp_path):
    from peers import TestAgent, peers_bin

    bindir = peers_bin()
    agent = TestAgent()
    try:
        base = {k: v for k, v in os.environ.items() if not k.startswith("DD_") and k != "PYTHONPATH"}
        common = dict(
            base,
            DD_TRACE_AGENT_URL=agent.url,
            DD_SERVICE="parity", DD_ENV="test", DD_VERSION="1.0", DD_TAGS="team:a b,foo:bar",
            DD_PROFILING_UPLOAD_INTERVAL="60",  # one upload, at exit
            DD_PROFILING_CAPTURE_PCT="100",  # every lock event: counts comparable exactly
            DD_PROFILING_HEAP_SAMPLE_SIZE="65536",
            DD_PROFILING_EXCEPTION_ENABLED="true",
        )
        dd_env = dict(common, DD_PROFILING_ENABLED="true", DD_TRACE_ENABLED="false",
                      DD_INSTRUMENTATION_TELEMETRY_ENABLED="false", DD_REMOTE_CONFIGURATION_ENABLED="false")
        dd, dd_truth = run_under(agent, [os.path.join(bindir, "ddtrace-run"), os.path.join(bindir, "python"), WORKLOAD], dd_env)
        ours, our_truth = run_under(agent, [sys.executable, "-m", "profiler.run", sys.executable, WORKLOAD], common)
    finally:
        agent.close()

    # HTTP: what the agent routes and parses on
    for header in ("content-type", "dd-evp-origin", "dd-evp-origin-version", "user-agent"):
        assert header in dd.headers and header in ours.headers, header
    assert ours.headers["content-type"].startswith("multipart/form-data; boundary=")
    # multipart parts and event keys
    assert set(ours.parts) == set(dd.parts) - PARTS_ONLY_DDTRACE
    assert ours.parts["event"][:2] == dd.parts["event"][:2] == ("event.json", "application/json")
    assert set(dd.event) - set(ours.event) == EVENT_KEYS_ONLY_DDTRACE
    assert set(ours.event) <= set(dd.event)
    assert ours.event["attachments"] == [n for n in dd.event["attachments"] if n not in PARTS_ONLY_DDTRACE]
    for key in ("family", "version", "endpoint_counts"):
        assert ours.event[key] == dd.event[key], key
    assert ours.event["start"].endswith("Z") and len(ours.event["start"]) == len(dd.event["start"])
    assert ours.event["process_tags"] == dd.event["process_tags"]
    assert set(ours.event["info"]["profiler"]["settings"]) <= set(dd.event["info"]["profiler"]["settings"])
    # tags
    dd_tags, our_tags = dd.tags, ours.tags
    assert set(dd_tags) <= set(our_tags), set(dd_tags) - set(our_tags)
    for key in ("env", "service", "version", "team", "foo", "language", "runtime", "runtime_version", "runtime_platform"):
        assert our_tags[key] == dd_tags[key], key
    for key in ("runtime-id", "process_id"):
        assert len(our_tags[key]) == len(dd_tags[key]) or key == "process_id", key
    words = lambda config: set(config.split("_"))  # noqa: E731
    assert words(our_tags["profiler_config"]) - {"exception"} == words(dd_tags["profiler_config"]) - CONFIG_WORDS_ONLY_DDTRACE - {"exception"}

    dd_units, dd_kinds, dd_parts = summary(dd)
    our_units, our_kinds, our_parts = summary(ours)
    # sample types and units: ours are ddtrace's (which also lists its GPU types, always 0 here)
    assert set(our_units) <= set(dd_units)
    assert all(dd_units[t] == unit for t, unit in our_units.items())
    assert set(dd_units) - set(our_units) <= {t for t in dd_units if t.startswith("gpu-")}
    # label keys and kinds
    assert set(dd_kinds) - set(our_kinds) <= LABELS_ONLY_DDTRACE, set(dd_kinds) - set(our_kinds)
    assert set(our_kinds) - set(dd_kinds) <= LABELS_ONLY_OURS, set(our_kinds) - set(dd_kinds)
    for key in set(dd_kinds) & set(our_kinds):
        assert dd_kinds[key] == our_kinds[key], key

    # totals of the program's own work, within sampling tolerance
    def compare(part, type_, tolerance):
        a, b = our_parts.get(part, {}).get(type_, 0), dd_parts.get(part, {}).get(type_, 0)
        assert close(a, b, tolerance), (part, type_, a, b)

    # the timeline: every wall-time and lock-acquire sample of both stamped with a moment of the
    # period (ddtrace's DD_PROFILING_TIMELINE_ENABLED default, true, in both)
    for parts, who in ((our_parts, "ours"), (dd_parts, "ddtrace")):
        assert parts["timeline"]["wall-samples"] > 0 and parts["timeline"]["lock-samples"] > 0, who
        assert parts["timeline"]["stamped"] == parts["timeline"]["wall-samples"], (who, parts["timeline"])
        assert parts["timeline"]["lock-stamped"] == parts["timeline"]["lock-samples"], (who, parts["timeline"])

    # CPU and wall time against each run's own truth (ddtrace slows the program down more)
    for parts, truth, who in ((our_parts, our_truth, "ours"), (dd_parts, dd_truth, "ddtrace")):
        for thread, type_, index in (("burn", "cpu-time", 0), ("burn", "wall-time", 1), ("sleeper", "wall-time", 1)):
            measured = parts.get(thread, {}).get(type_, 0) / 1e9
            # 0.35: a thread's CPU before its first capture is not counted, and on a loaded machine
            # the first capture of a thread started after the profiler can come late (this one
            # lives ~0.25 s): 0.15 s of 0.22 measured once, with other tests running
            assert close(measured, truth[thread][index], 0.35), (who, thread, type_, measured, truth[thread])
    # cpu-samples counts thread samples in both, each standing for the wall time since the
    # previous one: wall time per count is the mean sampling interval, at least the 10 ms minimum
    # and at most the 1 s cap. The counts themselves differ by design: ddtrace 4.16 budgets its
    # sampler 1% of the application's own CPU time (p95 over 10 minutes; it reads
    # DD_PROFILING_MAX_TIME_USAGE_PCT and does nothing with it), this project 1% of wall time as
    # that variable says, so on these 8 threads busy on 2 cores ddtrace samples more often, the
    # more so the busier the machine: 16-20 ms against 25-30 ms here alone, 11.2 ms against 24.7
    # in a loaded CI run. So ours is held to its own budget: a capture of these 8 threads costs
    # 0.2-0.3 ms, 20-30 ms at 1%; a sampler that stalls or whose cost doubled fails 60 ms.
    intervals = {}
    for parts, who in ((our_parts, "ours"), (dd_parts, "ddtrace")):
        count, wall = parts["all"].get("cpu-samples", 0), parts["all"].get("wall-time", 0)
        assert count > 0, who
        intervals[who] = wall / count / 1e9
        assert 0.009 <= intervals[who] <= 1.0, (who, intervals[who], count, wall)
    assert intervals["ours"] <= 0.06, intervals
    for name in ("lock", "cond"):  # one count per sampled acquire and release, as ddtrace
        for type_ in ("lock-acquire", "lock-release"):
            compare("lock " + name, type_, 0.02)
    compare("lock lock", "lock-release-hold", 0.25)
    compare("lock lock", "lock-acquire-wait", 0.5)  # two threads contending for it
    compare("allocator", "alloc-space", 0.3)
    compare("allocator", "heap-space", 0.5)
    compare("allocator", "heap-live-samples", 0.5)
    # One in 100 of the 20,000 raised is sampled, each counting once, in both (ddtrace from 3.12):
    # against the truth, 200, within 30% (4 standard deviations). 3,000 raised gave 47 once here.
    ours_exc = our_parts.get("raiser", {}).get("exception-samples", 0)
    assert close(ours_exc, 200, 0.3), ours_exc
    if sys.version_info >= (3, 12):
        dd_exc = dd_parts.get("raiser", {}).get("exception-samples", 0)
        assert close(dd_exc, 200, 0.3), dd_exc
