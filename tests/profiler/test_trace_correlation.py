"""Trace correlation (issue #19) on a real service: a WSGI app under gunicorn, traced by ddtrace's
tracer or the OpenTelemetry SDK, profiled by this project, uploading to ``ddapm-test-agent``.

Checked in what the agent received: every request's samples carry ``span id``/``local root span
id`` (numbers), ``trace type`` and ``trace endpoint``; ``endpoint_counts`` counts the requests
sent exactly; each endpoint's share of the CPU is the share it measured of itself (5 points);
with ddtrace the uploads carry the tracer's ``runtime-id``, and the label keys and kinds are
those ddtrace's own profiler sends for the same service.
"""

import json
import os
import sys
import urllib.request

import pytest

from profiler_core.pprof import profile_pb2

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "traced"))

pytestmark = pytest.mark.skipif(
    sys.version_info[:2] not in ((3, 11), (3, 12)),
    reason="the tracers are installed for 3.11 and 3.12 (tests/exporter_agent/peers.py)",
)

SPAN_LABELS = {"span id": "num", "local root span id": "num", "trace type": "str", "trace endpoint": "str"}
ROUNDS = 75  # per client, 4 clients: 300 requests per endpoint, 5.1 s of CPU in all


def read_uploads(agent):
    """Endpoint counts summed over the uploads, label kinds, CPU by endpoint, and the runtime ids
    of the uploads with span labels."""
    counts, kinds, cpu, runtime_ids = {}, {}, {}, set()
    uploads = agent.uploads()
    assert uploads
    for upload in uploads:
        for endpoint, n in (upload.event.get("endpoint_counts") or {}).items():
            counts[endpoint] = counts.get(endpoint, 0) + n
        profile = profile_pb2.Profile.FromString(upload.pprof_bytes())
        st = profile.string_table
        types = [st[t.type] for t in profile.sample_type]
        for sample in profile.sample:
            labels = {}
            for label in sample.label:
                key = st[label.key]
                labels[key] = st[label.str] if label.str else label.num
                if key in SPAN_LABELS:
                    kinds[key] = "str" if label.str else "num"
            if "span id" in labels:
                runtime_ids.add(upload.tags["runtime-id"])  # the worker's (the master runs no tracer)
            if "trace endpoint" in labels:
                assert "local root span id" in labels and "span id" in labels, labels
                assert labels.get("trace type") == "web", labels
            values = dict(zip(types, sample.value))
            endpoint = labels.get("trace endpoint")
            cpu[endpoint] = cpu.get(endpoint, 0) + values.get("cpu-time", 0)
    return counts, kinds, cpu, runtime_ids


def trace_runtime_ids(agent):
    """The runtime-id of the traces the tracer sent to the agent."""
    with urllib.request.urlopen(agent.url + "/test/session/traces", timeout=10) as response:
        traces = json.load(response)
    return {span["meta"]["runtime-id"] for trace in traces for span in trace if "runtime-id" in span.get("meta", {})}


def run_service(tmp_path, agent, traced_by, under="profiler"):
    from service import Service

    env = dict(DD_TRACE_AGENT_URL=agent.url, DD_SERVICE="traced", DD_ENV="test", TRACED_BY=traced_by,
               DD_PROFILING_UPLOAD_INTERVAL="60", DD_INSTRUMENTATION_TELEMETRY_ENABLED="false",
               DD_REMOTE_CONFIGURATION_ENABLED="false")
    if under == "ddtrace":
        env["DD_PROFILING_ENABLED"] = "true"
    service = Service(str(tmp_path), env, under=under)
    try:
        sent = service.drive(ROUNDS)
        measured = service.measured()
    finally:
        code = service.stop()
    assert code == 0, service.output()
    return sent, measured


def check_endpoints(sent, measured, counts, cpu, name):
    assert counts == dict({name(path): n for path, n in sent.items()}, **{name("/stats"): 1})
    total = sum(cpu.get(name(path), 0) for path in sent)
    truth_total = sum(measured.values())
    shares = {path: (cpu.get(name(path), 0) / total, measured[path] / truth_total) for path in sent}
    print("endpoint CPU shares (profile, measured):", shares)
    for path, (share, truth) in shares.items():
        assert abs(share - truth) <= 0.05, (path, share, truth, cpu, measured)


# A burst of load from elsewhere on a 2-core machine can move an endpoint's share past the bound
# (CI saw 5.0 points once, the shares being 0.5-3 off otherwise): up to two fresh measurements are
# allowed, as in the stack accuracy tests. Endpoints mislaid by the profiler fail all three.
ATTEMPTS = 3


def measured_and_checked(tmp_path, agent, traced_by):
    """run_service, then the uploads read and check_endpoints passed (measured again if not):
    what was sent, the uploads (counts, kinds, cpu, runtime ids) and the traces' runtime ids."""
    for attempt in range(ATTEMPTS):
        agent.clear()
        run_dir = tmp_path / ("run%d" % attempt)
        run_dir.mkdir()
        sent, measured = run_service(run_dir, agent, traced_by)
        uploads = read_uploads(agent)
        try:
            check_endpoints(sent, measured, uploads[0], uploads[2], lambda path: "GET " + path)
        except AssertionError as error:
            if attempt == ATTEMPTS - 1:
                raise
            print("measurement %d outside the bounds, measuring again: %s" % (attempt + 1, error))
            continue
        return sent, uploads, trace_runtime_ids(agent)


def test_a_ddtrace_traced_service_is_profiled_per_span_and_endpoint(tmp_path):
    from service import TestAgent

    agent = TestAgent()
    try:
        sent, (counts, kinds, cpu, runtime_ids), traces_runtime = measured_and_checked(tmp_path, agent, "ddtrace")
        agent.clear()
        run_service(tmp_path, agent, "ddtrace", under="ddtrace")
        _dd_counts, dd_kinds, dd_cpu, _ = read_uploads(agent)
    finally:
        agent.close()
    dd_total = sum(dd_cpu.get("GET " + path, 0) for path in sent)
    print("ddtrace's profiler:", {path: dd_cpu.get("GET " + path, 0) / dd_total for path in sent})
    assert kinds == SPAN_LABELS
    assert dd_kinds == kinds  # the same labels, of the same kinds, as ddtrace's profiler sends
    assert runtime_ids and runtime_ids <= traces_runtime, (runtime_ids, traces_runtime)


def test_an_opentelemetry_traced_service_is_profiled_per_span_and_endpoint(tmp_path):
    """The stock SDK's TracerProvider, set up by the program after the profiler started: SERVER
    spans named ``GET`` with ``http.route``; the endpoint is the method and the route."""
    from service import TestAgent

    agent = TestAgent()
    try:
        _sent, (_counts, kinds, _cpu, _runtime_ids), _ = measured_and_checked(tmp_path, agent, "otel")
    finally:
        agent.close()
    assert kinds == SPAN_LABELS


def run_scenario(tmp_path, name):
    """Run ``scenarios.py name`` under profiler-run with the peers' interpreter, profiles written
    to files; its span ids and the samples of each profile written."""
    import glob
    import subprocess

    from service import HERE, peers_bin, project_path

    out = tmp_path / "profiles"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DD_", "OTEL_")) and k != "PYTHONPATH"}
    env.update(PYTHONPATH=project_path(str(tmp_path)), DD_PROFILING_OUTPUT_PPROF=str(out) + "/",
               DD_TRACE_ENABLED="false", DD_INSTRUMENTATION_TELEMETRY_ENABLED="false",
               DD_REMOTE_CONFIGURATION_ENABLED="false", DD_PROFILING_CAPTURE_PCT="100")
    python = os.path.join(peers_bin(), "python")
    result = subprocess.run([python, "-m", "profiler.run", python, os.path.join(HERE, "scenarios.py"), name],
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    ids = json.loads(result.stdout.strip().splitlines()[-1])
    from pprof_helpers import decode

    profiles = {}
    for path in glob.glob(str(out / "*.pprof")):
        pid = int(os.path.basename(path).split(".")[-3])
        profiles.setdefault(pid, []).extend(
            ({frame[1] for frame in stack}, labels, values) for stack, labels, values in decode(path).samples())
    return ids, profiles


def signed(span_id):
    return span_id - 2**64 if span_id >= 2**63 else span_id


def cpu_by(samples, function, key):
    """CPU of the samples with ``function`` on their stack, by the value of label ``key``."""
    out = {}
    for functions, labels, values in samples:
        if function in functions:
            out[labels.get(key)] = out.get(labels.get(key), 0) + values.get("cpu-time", 0)
    return out


@pytest.mark.parametrize("tracer", ["ddtrace", "otel"])
def test_each_asyncio_task_is_in_its_own_span(tmp_path, tracer):
    ids, profiles = run_scenario(tmp_path, tracer + "_tasks")
    samples = [s for per_pid in profiles.values() for s in per_pid]
    for name in ("a", "b"):
        mine = [(labels, values) for _f, labels, values in samples if labels.get("task name") == "task-" + name]
        cpu = sum(v.get("cpu-time", 0) for _l, v in mine)
        in_span = sum(v.get("cpu-time", 0) for labels, v in mine if labels.get("span id") == signed(ids[name]))
        assert cpu > 0 and in_span >= 0.95 * cpu, (name, in_span, cpu)
        assert all(labels.get("span id") in (None, signed(ids[name])) for labels, _v in mine)
    if tracer == "ddtrace":  # lock samples carry the span too
        locks = [labels for _f, labels, values in samples
                 if values.get("lock-acquire") and labels.get("task name") in ("task-a", "task-b")]
        assert locks and all(labels.get("span id") == signed(ids[labels["task name"][-1]]) for labels in locks)


@pytest.mark.parametrize("tracer", ["ddtrace", "otel"])
def test_nested_spans_and_a_span_finished_elsewhere(tmp_path, tracer):
    ids, profiles = run_scenario(tmp_path, tracer + "_nested")
    samples = [s for per_pid in profiles.values() for s in per_pid]
    inner = cpu_by(samples, "in_inner", "span id")
    root = cpu_by(samples, "in_root", "span id")
    assert set(inner) == {signed(ids["inner"])}, inner
    assert set(root) == {signed(ids["root"])}, root
    assert set(cpu_by(samples, "in_inner", "local root span id")) == {signed(ids["root"])}
    assert set(cpu_by(samples, "in_inner", "trace endpoint")) == {"GET /nested"}
    after = cpu_by(samples, "after_finish", "span id")
    assert set(after) == {None}, after  # no span once it finished, even on another thread


def test_a_span_active_at_fork_labels_the_childs_samples(tmp_path):
    ids, profiles = run_scenario(tmp_path, "ddtrace_fork")
    child = profiles[ids["child"]]
    assert set(cpu_by(child, "in_child", "span id")) == {signed(ids["span"])}
