"""``profiler flamegraph``: the call tree it draws, and the page rendered in headless Chromium."""

import json
import re
import shutil
import subprocess

import pytest

from profiler.cli import main
from profiler.flamegraph import build_tree, diff_tree
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
    assert children(data["trees"]["cpu-time"])[evil.function]["value"] == 5


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def rendered_status(path, fragment):
    """The page's status element after headless Chromium ran its scripts, as a dict."""
    cmd = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000",
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
