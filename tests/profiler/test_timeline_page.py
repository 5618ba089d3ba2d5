"""``profiler timeline``: a real two-thread program's profile drawn lane by lane, checked on the
pixels headless Chromium draws, plus the flame graph of a selected range and hover details."""

import glob
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from launching import run_launched
from profiler.cli import main
from profiler.pprof_reader import load
from profiler.timeline_page import NoTimeline, timeline_data

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
WINDOW = (1200, 400)
#: How late a new thread's first capture may come on a loaded machine.
LATE_FIRST_CAPTURE_NS = 350_000_000

# Two threads with known lives: "early" computes for 0.6 s and ends; "late" sleeps 0.6 s, then
# computes for 0.6 s. The moments are printed (time.time_ns()) for the test to place them.
APP = r"""
import json, threading, time
marks = {}
def waited():
    # nanoseconds this thread has waited for a CPU (Linux schedstat), None where unknown
    try:
        with open("/proc/thread-self/schedstat") as f:
            return int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
def got_cpu(name, began_wait, began):
    # share of its life the thread spent waiting for a CPU (None: unknown)
    ended_wait = waited()
    known = began_wait is not None and ended_wait is not None
    marks[name + "_cpu_wait"] = (ended_wait - began_wait) / (time.time_ns() - began) if known else None
def spin(seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
def early_work():
    spin(0.6)
def late_work():
    spin(0.6)
def early():
    marks["early"] = [time.time_ns()]
    w, cpu = waited(), time.thread_time_ns()
    early_work()
    marks["early_cpu_ns"] = time.thread_time_ns() - cpu
    got_cpu("early", w, marks["early"][0])
    marks["early"].append(time.time_ns())
def late():
    marks["late_sleep"] = [time.time_ns()]
    time.sleep(0.6)
    marks["late_sleep"].append(time.time_ns())
    w = waited()
    late_work()
    got_cpu("late_work", w, marks["late_sleep"][1])
    marks["late_work"] = [marks["late_sleep"][1], time.time_ns()]
a = threading.Thread(target=early, name="early")
b = threading.Thread(target=late, name="late")
a.start(); b.start(); a.join(); b.join()
print(json.dumps(marks))
"""


@pytest.fixture(scope="module")
def two_threads(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("timeline")
    out = tmp / "out"
    result = run_launched(["--output", str(out), sys.executable, "{script}"], tmp, script=APP)
    assert result.returncode == 0, result.stderr
    marks = json.loads(result.stdout.strip().splitlines()[-1])
    files = glob.glob(str(out / "*.pprof"))
    assert files, result.stderr
    page = tmp / "timeline.html"
    assert main(["timeline", *files, "-o", str(page)]) == 0
    return files, marks, page


def test_lanes_are_the_threads_with_their_samples_in_their_lives(two_threads):
    files, marks, _page = two_threads
    data = timeline_data(load(files))
    lanes = data["lanes"]
    index = {name.split(" ")[0]: i for i, name in enumerate(lanes)}
    assert {"early", "late", "MainThread"} <= set(index), lanes
    start = data["start_ns"]
    for lane, (began, ended) in (("early", marks["early"]), ("late", [marks["late_sleep"][0], marks["late_work"][1]])):
        rows = [row for row in data["samples"] if row[0] == index[lane] and row[5] > 0]
        assert rows, lane
        first_start = start + rows[0][2] * 1000
        first_end = start + rows[0][3] * 1000
        last_end = start + rows[-1][3] * 1000
        # taken while the thread lived; a new thread's first capture can come late on a loaded
        # machine (0.3 s seen in the stack tests), so its first bar may start after the thread did
        assert began - 1e6 <= first_end <= began + LATE_FIRST_CAPTURE_NS, (lane, began, first_end)
        assert last_end <= ended + 60e6, (lane, last_end, ended)
        # The bars of a lane cover what was sampled of its life once, end to end: their lengths
        # add up to the span from the first bar's start to the last one's end, and that span is
        # the life give or take the late first capture and the unsampled time after the last one.
        covered = sum(row[3] - row[2] for row in rows) * 1000
        life = last_end - first_start
        interval = covered / len(rows)
        assert last_end >= ended - 2 * interval - 50e6, (lane, last_end, ended, interval)
        assert abs(covered - life) <= 0.1 * life + 2 * interval, (lane, covered / 1e9, life / 1e9, interval / 1e9)


def test_profiles_without_moments_are_refused_with_one_line(tmp_path, capsys):
    from pprof_helpers import write_profile
    from profiler_core.events import Frame

    path = write_profile(tmp_path / "plain.pprof", [((Frame("app.py", "main", 1),), (), {"wall-time": 10})])
    with pytest.raises(NoTimeline):
        timeline_data(load([path]))
    assert main(["timeline", path, "-o", str(tmp_path / "t.html")]) == 1
    err = capsys.readouterr().err
    assert "no timestamped samples" in err and "plain.pprof" in err and len(err.strip().splitlines()) == 1


def _chromium(page, fragment, screenshot=None):
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           "--window-size=%d,%d" % WINDOW, "--virtual-time-budget=4000"]
    url = "file://%s#%s" % (page, fragment)
    if screenshot is not None:
        subprocess.run(cmd + ["--screenshot=%s" % screenshot, url], capture_output=True, timeout=120)
        assert os.path.exists(screenshot)
        return None
    dom = subprocess.run(cmd + ["--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
    tag = re.search(r'<div id="status"([^>]*)>', dom)
    assert tag, dom[:2000]
    return {k: v.replace("&quot;", '"').replace("&amp;", "&") for k, v in re.findall(r'data-([a-z-]+)="([^"]*)"', tag.group(1))}


def _fraction(moment_ns, status):
    geometry = json.loads(status["geometry"])
    return ((moment_ns - int(status["start-ns"])) / 1000.0) / geometry["total"]


needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (installed by .ci/run)")

#: Share of a computing thread's bars drawn as running: when it got a CPU whenever it wanted one
#: (it waited for one under 10% of its run, counted by the kernel), and otherwise. A thread kept
#: off the CPUs by the rest of a loaded machine did not run for stretches, and its bars say so
#: (CI's suite once starved one to 4% of a CPU for 60 ms); a page that drew computing as waiting
#: or nothing at all still fails both.
RUNNING_QUIET, RUNNING_LOADED = 0.9, 0.5
QUIET_CPU_WAIT = 0.10


def running_bound(marks, name):
    wait = marks.get(name + "_cpu_wait")
    return RUNNING_QUIET if wait is not None and wait < QUIET_CPU_WAIT else RUNNING_LOADED


@needs_chromium
def test_chromium_draws_each_thread_in_its_lane_where_and_how_it_ran(two_threads, tmp_path):
    from PIL import Image

    _files, marks, page = two_threads
    status = _chromium(page, "")
    assert status["ready"] == "1" and int(status["drawn"]) > 50
    lanes = [name.split(" ")[0] for name in json.loads(status["lanes"])]
    geometry = json.loads(status["geometry"])
    shot = tmp_path / "shot.png"
    _chromium(page, "", screenshot=str(shot))
    image = Image.open(shot).convert("RGB")
    plot_left = geometry["left"] + geometry["labelWidth"]
    plot_width = geometry["width"] - geometry["labelWidth"]

    def pixels(lane, began, ended):
        """Colours drawn in the middle row of ``lane`` between two moments (5% margins)."""
        y = int(geometry["top"] + geometry["axis"] + lanes.index(lane) * geometry["laneHeight"] + geometry["laneHeight"] / 2)
        a, b = _fraction(began, status), _fraction(ended, status)
        a, b = a + 0.05 * (b - a), b - 0.05 * (b - a)
        xs = range(int(plot_left + a * plot_width), int(plot_left + b * plot_width))
        return [image.getpixel((x, y)) for x in xs]

    def kind(rgb):
        if min(rgb) >= 240:
            return "empty"  # the page's white or a lane's light grey stripe
        # a bar's lightness falls from 82% (no CPU over its time) to 50% (on a CPU all of it)
        lightness = (max(rgb) + min(rgb)) / 2 / 255
        return "waiting" if lightness > 0.75 else "running"

    def share(colours, what):
        return sum(kind(c) == what for c in colours) / max(len(colours), 1)

    # Each lane is checked from its first bar on (a new thread's first capture can come late on a
    # loaded machine: the lanes test bounds how late); that bar starts within the first 350 ms.
    data = timeline_data(load(_files))
    index = {name.split(" ")[0]: i for i, name in enumerate(data["lanes"])}

    def drawn_from(lane, began):
        first = min(row[2] for row in data["samples"] if row[0] == index[lane] and row[5] > 0)
        first_ns = data["start_ns"] + first * 1000
        assert first_ns <= began + LATE_FIRST_CAPTURE_NS, (lane, began, first_ns)
        return max(began, first_ns)

    early_life = pixels("early", drawn_from("early", marks["early"][0]), marks["early"][1])
    assert share(early_life, "running") > running_bound(marks, "early"), ([kind(c) for c in early_life][:40], marks)
    after_early = pixels("early", marks["early"][1] + 100_000_000, marks["late_work"][1] - 50_000_000)
    assert share(after_early, "empty") > 0.95  # it ended: nothing drawn
    asleep = pixels("late", drawn_from("late", marks["late_sleep"][0]), marks["late_sleep"][1])
    assert share(asleep, "waiting") > 0.85, [kind(c) for c in asleep][:40]
    working = pixels("late", *marks["late_work"])
    assert share(working, "running") > running_bound(marks, "late_work"), marks


@needs_chromium
def test_chromium_draws_the_flame_graph_of_a_selected_range_and_hover_details(two_threads):
    _files, marks, page = two_threads
    status = _chromium(page, "")
    late_from, late_to = (_fraction(t, status) for t in marks["late_work"])
    early_from, early_to = (_fraction(t, status) for t in marks["early"])

    selected = _chromium(page, "select=%f,%f" % (late_from + 0.02, late_to - 0.02))
    names = set(json.loads(selected["flame-names"]))
    assert "late_work" in names and "early_work" not in names, names
    assert int(selected["flame-total"]) > 0
    # the root spans the chart (fractional values once drew it a tenth as wide, its children astray)
    assert float(selected["flame-root-width"]) >= 0.98 * float(selected["flame-width"]) - 2, selected

    selected = _chromium(page, "select=%f,%f&type=cpu-time" % (early_from + 0.02, early_to - 0.02))
    names = set(json.loads(selected["flame-names"]))
    assert "early_work" in names and "late_work" not in names, names
    # CPU of the selection: the early thread computing for most of it (0.6 s of wall time, all of it
    # on a CPU when the machine is quiet): at least half of what it measured of its CPU there
    selected_part = (early_to - early_from - 0.04) / (early_to - early_from)
    assert int(selected["flame-total"]) > 0.5 * marks["early_cpu_ns"] * selected_part, (selected, marks)

    lanes = [name.split(" ")[0] for name in json.loads(status["lanes"])]
    middle = (early_from + early_to) / 2
    hovered = _chromium(page, "hover=%f,%f&lane=%d" % (middle, middle, lanes.index("early")))
    assert hovered["hovered"] in ("early_work", "spin"), hovered
