"""A self-contained HTML timeline of timestamped samples: what each thread (and asyncio task) ran, when.

``timeline_html`` lays out every sample that carries an ``end_timestamp_ns`` label (the timeline,
``DD_PROFILING_TIMELINE_ENABLED``) on one lane per thread, and per asyncio task under its thread:
each sample is a bar from its moment minus its wall time to its moment, coloured by its leaf
function, pale where the thread used no CPU. The wheel zooms, a drag pans, a shift-drag selects a
time range, and the flame graph of the selection is drawn below (by the bundled d3-flame-graph,
inlined as in :mod:`profiler.flamegraph`, so the page needs no network).
"""

from __future__ import annotations

import json

from profiler.flamegraph import _asset, _html_escape, _script_safe
from profiler.pprof_reader import ProfileSet

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, List, Optional, Tuple

#: The label holding a sample's moment, in nanoseconds since the epoch (ddtrace's name).
END_TIMESTAMP_NS = "end_timestamp_ns"
#: Samples a page holds; past it, the earliest are left out (the page says how many).
MAX_SAMPLES = 400_000


class NoTimeline(Exception):
    """The profiles have no timestamped samples; ``str()`` says so in one line."""


def _lane_of(labels: "Dict[str, object]") -> "Tuple[str, object, str]":
    thread = labels.get("thread name")
    tid = labels.get("thread id", labels.get("thread native id", ""))
    task = labels.get("task name")
    return (str(thread) if thread is not None else "thread %s" % tid, tid, str(task) if task is not None else "")


def timeline_data(profiles: ProfileSet, max_samples: int = MAX_SAMPLES) -> dict:
    """What the page draws: lanes, the stacks and strings they use, and each sample as
    ``[lane, stack, start_us, end_us, cpu_ns, wall_ns, lane_cpu_ns]`` with times from the first
    moment; ``lane_cpu_ns`` is the CPU of every sample of the lane at that moment (a sampler may
    split one capture's CPU between the stacks before and after it)."""
    stamped = []
    for sample in profiles.samples:
        moment = sample.labels.get(END_TIMESTAMP_NS)
        if isinstance(moment, int) and moment > 0:
            stamped.append((moment, sample))
    if not stamped:
        raise NoTimeline("no timestamped samples (end_timestamp_ns: DD_PROFILING_TIMELINE_ENABLED)")
    stamped.sort(key=lambda pair: pair[0])
    left_out = max(len(stamped) - max_samples, 0)
    stamped = stamped[left_out:]
    t0 = min(moment - max(sample.values.get("wall-time", 0), 0) for moment, sample in stamped)
    strings: "Dict[str, int]" = {}
    stacks: "Dict[tuple, int]" = {}
    stack_list: "List[List[int]]" = []
    lanes: "Dict[Tuple[str, object, str], int]" = {}
    rows = []

    def string(text: str) -> int:
        index = strings.get(text)
        if index is None:
            index = strings[text] = len(strings)
        return index

    for moment, sample in stamped:
        lane = lanes.setdefault(_lane_of(sample.labels), len(lanes))
        sid = stacks.get(id(sample.frames))
        if sid is None:
            # root first, [function, file] string pairs
            sid = stacks[id(sample.frames)] = len(stack_list)
            frames = []
            for function, filename, _line in reversed(sample.frames):
                frames += [string(function), string(filename)]
            stack_list.append(frames)
        wall = max(sample.values.get("wall-time", 0), 0)
        cpu = max(sample.values.get("cpu-time", 0), 0)
        end_us = (moment - t0) / 1000.0
        rows.append([lane, sid, round(end_us - wall / 1000.0, 1), round(end_us, 1), cpu, wall, 0])
    cpu_at: "Dict[Tuple[int, float], int]" = {}
    for row in rows:
        cpu_at[(row[0], row[3])] = cpu_at.get((row[0], row[3]), 0) + row[4]
    for row in rows:
        row[6] = cpu_at[(row[0], row[3])]
    # A sample stands for the wall time up to its moment, drawn from the moment minus that time;
    # captures fall at random moments of their intervals, so consecutive bars of a lane would
    # overlap or leave slivers: each starts where the lane's previous one ended when that is less
    # than its own wall time away.
    last_end: "Dict[int, float]" = {}
    for row in rows:
        if row[5] <= 0:
            continue
        previous = last_end.get(row[0])
        if previous is not None and abs(row[2] - previous) < row[5] / 1000.0 and previous < row[3]:
            row[2] = previous
        last_end[row[0]] = row[3]
    # Lanes in order of thread first seen, each thread's tasks right after it.
    first_seen: "Dict[Tuple[str, object], int]" = {}
    for (thread, tid, task), index in lanes.items():
        first_seen.setdefault((thread, tid), index)
    order = sorted(lanes, key=lambda k: (first_seen[(k[0], k[1])], k[2] != "", k[2]))
    position = {lanes[key]: i for i, key in enumerate(order)}
    for row in rows:
        row[0] = position[row[0]]
    lane_names = [("%s (%s)" % (thread, tid) if not task else "%s / task %s" % (thread, task)) for thread, tid, task in order]
    return {
        "start_ns": t0,
        "lanes": lane_names,
        "strings": list(strings),
        "stacks": stack_list,
        "samples": rows,
        "left_out": left_out,
        "units": {"cpu-time": "nanoseconds", "wall-time": "nanoseconds"},
    }


def timeline_html(profiles: ProfileSet, title: str, max_samples: int = MAX_SAMPLES) -> str:
    """The timeline page of ``profiles`` (:class:`NoTimeline` when no sample has a moment)."""
    data = timeline_data(profiles, max_samples)
    data["title"] = title
    return PAGE.format(
        title=_html_escape(title),
        css=_asset("d3-flamegraph.css"),
        d3=_script_safe(_asset("d3.v7.min.js")),
        flamegraph=_script_safe(_asset("d3-flamegraph.min.js")),
        data=json.dumps(data, separators=(",", ":")).replace("<", "\\u003c"),
        app=APP,
    )


PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>{css}</style>
<style>
body {{ font-family: Verdana, sans-serif; margin: 12px; background: #fff; }}
header {{ display: flex; gap: 12px; align-items: center; flex-wrap: wrap; margin-bottom: 8px; }}
h1 {{ font-size: 16px; margin: 0 12px 0 0; }}
#details {{ height: 8.5em; overflow: hidden; font-size: 12px; color: #333; margin: 6px 0; white-space: pre; font-family: monospace; }}
#timeline {{ display: block; cursor: grab; }}
#status {{ display: none; }}
.hint {{ font-size: 12px; color: #666; }}
</style>
</head>
<body>
<header>
<h1>{title}</h1>
<label>Flame graph of <select id="type"><option value="wall-time">wall time</option><option value="cpu-time">CPU time</option></select></label>
<button id="reset">Reset view</button>
<span id="summary"></span>
<span class="hint">wheel: zoom &middot; drag: pan &middot; shift-drag: select a time range</span>
</header>
<canvas id="timeline"></canvas>
<div id="details"></div>
<div id="selection"></div>
<div id="chart"></div>
<div id="status"></div>
<script>{d3}</script>
<script>{flamegraph}</script>
<script>const TIMELINE = {data};</script>
<script>{app}</script>
</body>
</html>
"""

# The page's code: layout, drawing on a canvas, zoom/pan/select, hover details, the selection's
# flame graph, and the status element tests read (data-* attributes, #select=a,b and #zoom=a,b).
APP = r"""
(function () {
  "use strict";
  const T = TIMELINE, S = T.samples, strings = T.strings;
  const LANE_H = 20, AXIS_H = 22, LABEL_W = 240;
  const canvas = document.getElementById("timeline"), ctx = canvas.getContext("2d");
  const details = document.getElementById("details"), status = document.getElementById("status");
  const selectionInfo = document.getElementById("selection"), typeSelect = document.getElementById("type");
  let total = 0;
  for (const s of S) total = Math.max(total, s[3]);
  total = Math.max(total, 1);
  let v0 = 0, v1 = total, selection = null, drawn = 0;
  const byLane = T.lanes.map(function () { return []; });
  for (let i = 0; i < S.length; i++) byLane[S[i][0]].push(i);
  for (const lane of byLane) lane.sort(function (a, b) { return S[a][3] - S[b][3]; });

  function human(ns) {
    if (ns >= 1e9) return (ns / 1e9).toFixed(2) + " s";
    if (ns >= 1e6) return (ns / 1e6).toFixed(2) + " ms";
    if (ns >= 1e3) return (ns / 1e3).toFixed(1) + " \u00b5s";
    return Math.round(ns) + " ns";
  }
  function leaf(s) { const st = T.stacks[s[1]]; return st.length ? strings[st[st.length - 2]] : "(no frames)"; }
  const colours = {};
  function colour(name, share) {
    let c = colours[name];
    if (!c) {
      let h = 0;
      for (let i = 0; i < name.length; i++) h = (h * 31 + name.charCodeAt(i)) >>> 0;
      c = colours[name] = [h % 360, 55 + (h >> 9) % 25];
    }
    // lighter the less of the time the thread was on a CPU: 82% lightness idle, 50% all the time
    return "hsl(" + c[0] + "," + c[1] + "%," + (82 - 32 * Math.min(Math.max(share, 0), 1)).toFixed(0) + "%)";
  }
  function plotWidth() { return canvas.width - LABEL_W; }
  function xOf(us) { return LABEL_W + (us - v0) / (v1 - v0) * plotWidth(); }
  function usOf(x) { return v0 + (x - LABEL_W) / plotWidth() * (v1 - v0); }

  function layout() {
    canvas.width = Math.max(600, document.body.clientWidth - 24);
    canvas.height = AXIS_H + T.lanes.length * LANE_H;
  }
  function draw() {
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.font = "11px Verdana, sans-serif";
    ctx.textBaseline = "middle";
    // time axis
    ctx.fillStyle = "#333";
    const span = v1 - v0, ticks = 8;
    for (let i = 0; i <= ticks; i++) {
      const us = v0 + span * i / ticks, x = xOf(us);
      ctx.fillRect(x, AXIS_H - 5, 1, 5);
      ctx.fillText(human(us * 1000), Math.min(x + 2, canvas.width - 60), AXIS_H / 2);
    }
    drawn = 0;
    for (let lane = 0; lane < T.lanes.length; lane++) {
      const y = AXIS_H + lane * LANE_H;
      if (lane % 2) { ctx.fillStyle = "#f6f6f6"; ctx.fillRect(LABEL_W, y, plotWidth(), LANE_H); }
      ctx.fillStyle = "#222";
      ctx.fillText(T.lanes[lane].slice(0, 34), 4, y + LANE_H / 2);
      for (const i of byLane[lane]) {
        const s = S[i];
        if (s[3] < v0 || s[2] > v1 || s[5] <= 0) continue;
        const x0 = Math.max(xOf(s[2]), LABEL_W), x1 = Math.min(xOf(s[3]), canvas.width);
        ctx.fillStyle = colour(leaf(s), s[6] / s[5]);
        ctx.fillRect(x0, y + 2, Math.max(x1 - x0, 1), LANE_H - 4);
        drawn++;
      }
    }
    if (selection && selection[1] >= v0 && selection[0] <= v1) {  // in view
      const a = Math.max(xOf(selection[0]), LABEL_W), b = Math.min(xOf(selection[1]), canvas.width);
      ctx.fillStyle = "rgba(30, 90, 200, 0.18)";
      ctx.fillRect(a, AXIS_H, Math.max(b - a, 1), canvas.height - AXIS_H);
    }
    const rect = canvas.getBoundingClientRect();
    setStatus({
      ready: 1, drawn: drawn, lanes: JSON.stringify(T.lanes), leftOut: T.left_out, startNs: String(T.start_ns),
      geometry: JSON.stringify({ top: rect.top + window.scrollY, left: rect.left + window.scrollX, labelWidth: LABEL_W,
        width: canvas.width, axis: AXIS_H, laneHeight: LANE_H, v0: v0, v1: v1, total: total }),
    });
  }
  function setStatus(extra) { for (const k in extra) status.dataset[k] = extra[k]; }

  function zoomTo(a, b) {
    const min = 10;  // µs
    if (b - a < min) { const mid = (a + b) / 2; a = mid - min / 2; b = mid + min / 2; }
    v0 = Math.max(0, a); v1 = Math.min(total, b);
    draw();
  }

  // The flame graph of the samples overlapping the selection, each counted in proportion to the
  // part of it inside (a sample stands for its whole wall time, up to its moment).
  function flameOf(a, b, type) {
    const root = { name: "all", file: "", value: 0, children: [], kids: {} };
    for (const s of S) {
      if (s[3] < a || s[2] > b) continue;
      const len = s[3] - s[2], inside = len > 0 ? (Math.min(s[3], b) - Math.max(s[2], a)) / len : 1;
      const value = Math.round((type === "cpu-time" ? s[4] : s[5]) * inside);  // integers: sums stay exact
      if (value <= 0) continue;
      let node = root;
      root.value += value;
      const st = T.stacks[s[1]];
      for (let i = 0; i < st.length; i += 2) {
        const key = st[i] + ":" + st[i + 1];
        let child = node.kids[key];
        if (!child) {
          child = node.kids[key] = { name: strings[st[i]], file: strings[st[i + 1]], value: 0, children: [], kids: {} };
          node.children.push(child);
        }
        child.value += value;
        node = child;
      }
    }
    return root;
  }
  function drawFlame() {
    const chartEl = document.getElementById("chart");
    chartEl.innerHTML = "";
    if (!selection) { selectionInfo.textContent = ""; setStatus({ flameTotal: 0, flameFrames: 0, flameNames: "[]" }); return; }
    const type = typeSelect.value, tree = flameOf(selection[0], selection[1], type);
    selectionInfo.textContent = "Selected " + human(selection[0] * 1000) + " \u2013 " + human(selection[1] * 1000) +
      ": " + (type === "cpu-time" ? "CPU " : "wall ") + human(tree.value);
    if (tree.value > 0) {
      const chart = flamegraph.default().width(Math.max(600, document.body.clientWidth - 24)).cellHeight(18)
        .minFrameSize(1).transitionDuration(0).title("").selfValue(false);
      d3.select("#chart").datum(tree).call(chart);
      // A new frame's rectangle grows in over d3's default 250 ms; this update's transitions (of
      // the duration set above, 0) replace those, so the graph is whole at once.
      chart.update();
    }
    const names = Array.from(document.querySelectorAll("#chart g.frame")).map(function (g) { return g.getAttribute("name"); });
    const rootRect = document.querySelector('#chart g.frame[name="all"]'), svg = document.querySelector("#chart svg");
    setStatus({ flameTotal: Math.round(tree.value), flameFrames: names.length, flameNames: JSON.stringify(names),
      flameRootWidth: rootRect ? rootRect.getBoundingClientRect().width : 0, flameWidth: svg ? svg.getBoundingClientRect().width : 0,
      selection: JSON.stringify(selection) });
  }
  function select(a, b) {
    selection = [Math.max(0, Math.min(a, b)), Math.min(total, Math.max(a, b))];
    draw();
    drawFlame();
  }

  function sampleAt(x, y) {
    const lane = Math.floor((y - AXIS_H) / LANE_H);
    if (lane < 0 || lane >= T.lanes.length || x < LABEL_W) return null;
    const us = usOf(x), slack = (v1 - v0) / plotWidth() * 2;
    const list = byLane[lane];
    let lo = 0, hi = list.length;
    while (lo < hi) { const mid = (lo + hi) >> 1; if (S[list[mid]][3] < us - slack) lo = mid + 1; else hi = mid; }
    for (let k = lo; k < list.length && k < lo + 64; k++) {
      const s = S[list[k]];
      if (s[2] - slack <= us && us <= s[3] + slack && s[5] > 0) return s;
    }
    return null;
  }
  function describe(s) {
    const st = T.stacks[s[1]], lines = [];
    lines.push(T.lanes[s[0]] + "  " + human(s[2] * 1000) + " \u2013 " + human(s[3] * 1000) +
      "  wall " + human(s[5]) + "  CPU " + human(s[6]));
    for (let i = st.length - 2, n = 0; i >= 0 && n < 6; i -= 2, n++) lines.push("  " + strings[st[i]] + "  (" + strings[st[i + 1]] + ")");
    return lines.join("\n");
  }

  let dragging = null;
  canvas.addEventListener("mousedown", function (e) {
    dragging = { x: e.offsetX, v0: v0, v1: v1, select: e.shiftKey, from: usOf(e.offsetX) };
    canvas.style.cursor = e.shiftKey ? "col-resize" : "grabbing";
  });
  window.addEventListener("mouseup", function (e) {
    if (dragging && dragging.select) {
      const to = usOf(e.clientX - canvas.getBoundingClientRect().left);
      if (Math.abs(to - dragging.from) > 0) select(dragging.from, to);
    }
    dragging = null;
    canvas.style.cursor = "grab";
  });
  canvas.addEventListener("mousemove", function (e) {
    if (dragging && !dragging.select) {
      const shift = (e.offsetX - dragging.x) / plotWidth() * (dragging.v1 - dragging.v0);
      let a = dragging.v0 - shift, b = dragging.v1 - shift;
      if (a < 0) { b -= a; a = 0; }
      if (b > total) { a -= b - total; b = total; }
      v0 = Math.max(0, a); v1 = Math.min(total, b);
      draw();
      return;
    }
    const s = sampleAt(e.offsetX, e.offsetY);
    details.textContent = s ? describe(s) : "";
  });
  canvas.addEventListener("wheel", function (e) {
    e.preventDefault();
    if (e.offsetX < LABEL_W) return;
    const at = usOf(e.offsetX), f = e.deltaY > 0 ? 1.25 : 0.8;
    zoomTo(at - (at - v0) * f, at + (v1 - at) * f);
  }, { passive: false });
  document.getElementById("reset").addEventListener("click", function () { v0 = 0; v1 = total; draw(); });
  typeSelect.addEventListener("change", drawFlame);
  window.addEventListener("resize", function () { layout(); draw(); });

  layout();
  draw();
  let samplesShown = 0;
  for (const s of S) if (s[5] > 0) samplesShown++;
  document.getElementById("summary").textContent = T.lanes.length + " lanes, " + samplesShown + " samples over " +
    human(total * 1000) + (T.left_out ? " (" + T.left_out + " earliest samples left out)" : "");
  // #zoom=a,b and #select=a,b (fractions of the whole time range): what tests and links use
  const hash = new URLSearchParams(location.hash.slice(1));
  function fractions(name) {
    const v = hash.get(name);
    if (!v) return null;
    const parts = v.split(",").map(Number);
    return parts.length === 2 && parts.every(isFinite) ? [parts[0] * total, parts[1] * total] : null;
  }
  if (hash.get("type")) typeSelect.value = hash.get("type");
  const z = fractions("zoom");
  if (z) zoomTo(z[0], z[1]);
  const hover = fractions("hover");
  if (hover) {
    const lane = Number(hash.get("lane") || 0);
    const s = sampleAt(xOf(hover[0]), AXIS_H + lane * LANE_H + LANE_H / 2);
    details.textContent = s ? describe(s) : "";
    setStatus({ hovered: s ? leaf(s) : "" });
  }
  const sel = fractions("select");
  if (sel) select(sel[0], sel[1]); else drawFlame();
})();
"""
