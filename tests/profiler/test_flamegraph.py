"""``profiler flamegraph``: the call tree it draws, and the page rendered in headless Chromium."""

import json
import re
import shutil
import subprocess

import pytest

from profiler.cli import main
from profiler.flamegraph import build_tree, diff_tree, inflate
from profiler.pprof_reader import load
from pprof_helpers import write_profile
from profiler_core.events import Frame

MAIN = Frame("/app/main.py", "main", 10)
HANDLE = Frame("/app/web.py", "handle", 20)
QUERY = Frame("/app/db.py", "query", 30)
RENDER = Frame("/app/web.py", "render", 40)


def write(path, pushes):
    """A profile of ``(stack, values)`` pushes, without labels."""
    return write_profile(path, [(stack, (), values) for stack, values in pushes])


@pytest.fixture
def known(tmp_path):
    # cpu-time: query 600 ms and render 300 ms under handle under main, main itself 100 ms.
    return write(
        tmp_path / "a.pprof",
        [
            ((QUERY, HANDLE, MAIN), {"cpu-time": 600_000_000, "alloc-space": 4096}),
            ((RENDER, HANDLE, MAIN), {"cpu-time": 300_000_000}),
            ((MAIN,), {"cpu-time": 100_000_000}),
        ],
    )


def children(node):
    return {c["name"]: c for c in node["children"]}


def test_tree_totals_match_the_profile(known):
    tree = build_tree(load([known]), "cpu-time")
    assert tree["name"] == "all" and tree["value"] == 1_000_000_000
    main_node = children(tree)["main"]
    handle = children(main_node)["handle"]
    assert main_node["value"] == 1_000_000_000 and handle["value"] == 900_000_000
    assert children(handle)["query"]["value"] == 600_000_000
    assert children(handle)["render"]["value"] == 300_000_000
    assert children(handle)["query"]["file"] == "/app/db.py"


def test_diff_tree_carries_self_value_changes(known, tmp_path):
    newer = write(
        tmp_path / "b.pprof",
        [((QUERY, HANDLE, MAIN), {"cpu-time": 200_000_000}), ((RENDER, HANDLE, MAIN), {"cpu-time": 700_000_000})],
    )
    base, new = load([known]), load([newer])
    base.duration_ns = new.duration_ns = 1_000_000_000  # both lasted a second: values per second are the values
    tree = diff_tree(base, new, "cpu-time")
    handle = children(children(tree)["main"])["handle"]
    assert children(handle)["query"]["delta"] == pytest.approx(-400_000_000)
    assert children(handle)["render"]["delta"] == pytest.approx(400_000_000)
    assert children(children(tree)["main"])["handle"]["delta"] == pytest.approx(0)
    assert children(tree)["main"]["delta"] == pytest.approx(-100_000_000)  # main's own 100 ms are gone


def page_data(path):
    html = open(path, encoding="utf-8").read()
    m = re.search(r"const PROFILE = (\{.*?\});</script>", html, re.S)
    return html, json.loads(m.group(1))


def test_page_is_self_contained_with_every_type(known, tmp_path, capsys):
    out = tmp_path / "fg.html"
    assert main(["flamegraph", known, "-o", str(out)]) == 0
    assert "flame graph:" in capsys.readouterr().out
    html, data = page_data(out)
    assert list(data["trees"]) == ["cpu-time", "alloc-space"]
    assert data["units"]["alloc-space"] == "bytes"
    assert not re.search(r"""(src|href)=["']?https?:""", html)  # nothing fetched when opened
    assert "d3-flame-graph" in html and "flamegraph.default()" in html


def test_names_that_close_a_script_cannot_break_the_page(tmp_path):
    evil = Frame("/app/x.py", "</script><script>alert(1)</script>", 1)
    path = write(tmp_path / "e.pprof", [((evil,), {"cpu-time": 5})])
    out = tmp_path / "e.html"
    assert main(["flamegraph", path, "-o", str(out)]) == 0
    html, data = page_data(out)
    assert html.count("</script>") == 4  # the page's own four: the name did not close one
    assert "<script>alert" not in html
    assert children(inflate(data["trees"]["cpu-time"], data["strings"]))[evil.function]["value"] == 5


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def rendered_status(path, fragment, budget_ms=5000, extra=()):
    """The page's status element after headless Chromium ran its scripts, as a dict."""
    cmd = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=%d" % budget_ms, *extra,
        "--dump-dom", "file://%s#%s" % (path, fragment),
    ]
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=120).stdout
    tag = re.search(r'<div id="status"([^>]*)>', dom)
    assert tag, dom[:2000]
    status = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', tag.group(1)))
    status["names"] = set(re.findall(r'<g [^>]*name="([^"]*)"[^>]*class="frame', dom))
    return status


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (installed by .ci/run)")
def test_chromium_renders_frames_and_search_and_zoom_work(known, tmp_path):
    out = tmp_path / "fg.html"
    assert main(["flamegraph", known, "-o", str(out)]) == 0
    status = rendered_status(out, "")
    assert status["ready"] == "1" and status["type"] == "cpu-time"
    assert {"all", "main", "handle", "query", "render"} <= status["names"]
    assert int(status["frames"]) == 5

    status = rendered_status(out, "search=query")
    assert status["matches"] == "1" and status["matched-value"] == str(600_000_000)
    status = rendered_status(out, "search=WEB.PY")  # file names too, any case: handle and render
    assert status["matches"] == "2" and status["matched-value"] == str(900_000_000)

    status = rendered_status(out, "zoom=render")  # a real click on the frame
    assert status["zoomed"] == "render"
    assert int(status["frames"]) < int(status["frames-before-zoom"])  # query left the picture
    assert "query" not in status["names"]

    status = rendered_status(out, "type=alloc-space")
    assert status["type"] == "alloc-space" and status["total"] == "4096"


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (installed by .ci/run)")
def test_chromium_renders_the_differential_page(known, tmp_path, capsys):
    newer = write(tmp_path / "b.pprof", [((RENDER, HANDLE, MAIN), {"cpu-time": 900_000_000})])
    out = tmp_path / "diff.html"
    assert main(["diff", known, newer, "--html", str(out)]) == 0
    status = rendered_status(out, "")
    assert status["ready"] == "1" and {"main", "handle", "render"} <= status["names"]


def naive_tree(profiles, sample_type):
    """The call tree the obvious way (nested dicts by (name, file)), to check build_tree against."""
    root = {"name": "all", "file": "", "value": 0, "children": {}}
    for sample in profiles.samples:
        value = sample.values.get(sample_type, 0)
        if not value:
            continue
        node = root
        node["value"] += value
        for name, filename, _line in reversed(sample.frames):
            node = node["children"].setdefault((name, filename), {"name": name, "file": filename, "value": 0, "children": {}})
            node["value"] += value
    return root


def tree_values(tree, sorted_children=True):
    """{path: value} of every node of a tree (build_tree's lists or naive_tree's dicts)."""
    out, todo = {}, [(tree, ())]
    while todo:
        node, path = todo.pop()
        path = path + ((node["name"], node["file"]),)
        out[path] = node["value"]
        kids = node["children"]
        kids = list(kids.values()) if isinstance(kids, dict) else kids
        if sorted_children and not isinstance(node["children"], dict):
            assert [c["value"] for c in kids] == sorted((c["value"] for c in kids), reverse=True)
        todo.extend((child, path) for child in kids)
    return out


def random_profiles(data):
    from hypothesis import strategies as st
    from profiler.pprof_reader import ProfileSample, ProfileSet

    frame = st.sampled_from([("a", "x.py", 1), ("a", "x.py", 2), ("b", "x.py", 3), ("c", "y.py", 4), ("a", "y.py", 5)])
    profiles = ProfileSet(units={"cpu-time": "nanoseconds", "wall-time": "nanoseconds"})
    for _ in range(data.draw(st.integers(0, 40))):
        frames = tuple(data.draw(st.lists(frame, max_size=7)))
        values = data.draw(st.dictionaries(st.sampled_from(["cpu-time", "wall-time"]), st.integers(1, 1000), max_size=2))
        profiles.samples.append(ProfileSample(frames, {}, values))
    return profiles


from hypothesis import given, settings, strategies as st  # noqa: E402


@settings(max_examples=40, deadline=5000, database=None)
@given(st.data())
def test_tree_from_sorted_stacks_is_the_naive_tree(data):
    profiles = random_profiles(data)
    for sample_type in ("cpu-time", "wall-time"):
        assert tree_values(build_tree(profiles, sample_type)) == tree_values(naive_tree(profiles, sample_type))


@settings(max_examples=40, deadline=5000, database=None)
@given(st.data(), st.integers(1, 30))
def test_tree_keeps_the_largest_frames_within_its_budget(data, max_nodes):
    profiles = random_profiles(data)
    full = tree_values(naive_tree(profiles, "cpu-time"))
    kept = tree_values(build_tree(profiles, "cpu-time", max_nodes=max_nodes))
    assert kept[(("all", ""),)] == full[(("all", ""),)]  # the total is all there
    assert len(kept) <= max_nodes + 1  # the frames, and the root
    assert all(full[path] == value for path, value in kept.items())
    dropped = [value for path, value in full.items() if path not in kept]
    frames = [value for path, value in kept.items() if len(path) > 1]
    if dropped and frames:
        assert min(frames) > max(dropped)


def test_a_large_tree_is_cut_to_the_budget(tmp_path):
    from profiler.pprof_reader import ProfileSample, ProfileSet

    MAX_NODES = 100_000

    profiles = ProfileSet(units={"cpu-time": "nanoseconds"})
    for i in range(4_000):  # 4,000 distinct 60-frame stacks under one root frame: 240,000 frames
        frames = tuple(("f%d_%d" % (i, d), "m.py", d) for d in range(59)) + (("main", "m.py", 0),)
        profiles.samples.append(ProfileSample(frames, {}, {"cpu-time": 1 + i % 7}))
    tree = build_tree(profiles, "cpu-time", max_nodes=MAX_NODES)
    values = tree_values(tree)
    assert len(values) <= MAX_NODES + 1 and tree["value"] == sum(1 + i % 7 for i in range(4_000))
    assert tree["children"][0]["name"] == "main" and tree["children"][0]["value"] == tree["value"]


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (installed by .ci/run)")
def test_chromium_renders_a_6000_frame_stack(tmp_path):
    from profiler_core.pprof import encode_profile
    from profiler_core.recorder import Recorder
    import gzip

    recorder = Recorder(max_frames=6000)
    recorder.push(tuple(Frame("/app/deep.py", "f%d" % i, i) for i in range(6000)), (), {"cpu-time": 7})
    path = tmp_path / "deep.pprof"
    path.write_bytes(gzip.compress(encode_profile(recorder.flush())))
    out = tmp_path / "deep.html"
    assert main(["flamegraph", str(path), "-o", str(out)]) == 0
    # V8 without its optimising compilers, as it runs a page's code at first on a busy machine: the
    # biggest stack frames, and where d3-flame-graph's recursive search overflowed with 6000 levels
    interpreted = ["--js-flags=--no-opt --no-sparkplug --no-maglev"]
    status = rendered_status(out, "search=f0", budget_ms=60000, extra=interpreted)
    assert status.get("ready") == "1" and status.get("matches") == "1" and status.get("total") == "7", status
    assert "&lt;4977 frames omitted&gt;" in status["names"]  # as the DOM dump writes it


@pytest.fixture
def two_endpoints(tmp_path):
    """Requests to two endpoints (trace correlation's labels) and work outside any request."""
    get_a = (("span id", 1), ("local root span id", 1), ("trace type", "web"), ("trace endpoint", "GET /a"))
    get_b = (("span id", 2), ("local root span id", 2), ("trace type", "web"), ("trace endpoint", "GET /b"))
    return write_profile(tmp_path / "e.pprof", [
        ((QUERY, HANDLE, MAIN), get_a, {"cpu-time": 600_000_000}),
        ((RENDER, HANDLE, MAIN), get_b, {"cpu-time": 300_000_000}),
        ((MAIN,), (), {"cpu-time": 100_000_000}),
    ])


def test_the_page_holds_each_endpoints_samples_alone(two_endpoints, tmp_path):
    out = tmp_path / "fg.html"
    assert main(["flamegraph", two_endpoints, "-o", str(out)]) == 0
    data = json.loads(re.search(r"const PROFILE = (\{.*?\});</script>", out.read_text()).group(1))
    assert list(data["endpoints"]) == ["GET /a", "GET /b"]  # heaviest first
    a = inflate(data["endpoints"]["GET /a"]["cpu-time"], data["strings"])
    assert a["value"] == 600_000_000 and set(children(children(children(a)["main"])["handle"])) == {"query"}


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (installed by .ci/run)")
def test_chromium_draws_one_endpoint_alone(two_endpoints, tmp_path):
    out = tmp_path / "fg.html"
    assert main(["flamegraph", two_endpoints, "-o", str(out)]) == 0
    status = rendered_status(out, "")
    assert status["endpoint"] == "" and status["total"] == str(1_000_000_000)
    assert {"query", "render"} <= status["names"]
    status = rendered_status(out, "endpoint=GET%20/b")
    assert status["endpoint"] == "GET /b" and status["total"] == str(300_000_000)
    assert "render" in status["names"] and "query" not in status["names"]
