"""Self-contained interactive HTML flame graphs, drawn by the bundled d3-flame-graph library.

``flamegraph_html`` turns merged profiles into one page holding every sample type
with data (a selector switches between them), with zoom on click, search, and a
details line giving each frame's total in human units on hover. ``diff_html``
draws the new profile's shape coloured by how much each frame grew (red) or
shrank (blue) against the base, per second of profile. The JavaScript and CSS
are inlined from ``profiler/assets`` (see ``scripts/vendor-flamegraph.sh``), so
the page needs no network.
"""

from __future__ import annotations

import json
import os
from operator import itemgetter

from profiler.pprof_reader import ProfileSet

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, Iterable, List, Optional, Tuple

ASSETS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets")


# The most frames a page holds per sample type: the smallest beyond it are left out, their time shown
# as their parent's own. A profile of half a million distinct stacks is tens of millions of tree
# nodes (gigabytes here, and more than a browser draws); this keeps every frame of more than about
# 1/50,000 of the total, what is visible without zooming in hundreds of times.
MAX_NODES = 100_000


# The deepest stack a page draws: d3-flame-graph walks the tree recursively (search, clear), which
# overflows the browser's stack somewhere past 2,000 levels when its code is not optimised yet
# (tested with V8's optimising compilers off). Deeper stacks keep their innermost frames under a
# "<N frames omitted>" frame at the root end, as the collectors cut stacks beyond
# DD_PROFILING_MAX_FRAMES.
MAX_DEPTH = 1024


def _page_stack(frames: "Tuple[Tuple[str, str, int], ...]", max_depth: int) -> "Tuple[Tuple[str, str, int], ...]":
    if len(frames) <= max_depth:
        return frames
    kept = max_depth - 1
    return frames[:kept] + (("<%d frames omitted>" % (len(frames) - kept), "", 0),)


class _FrameIds(dict):
    """Frame ``(name, file, line)`` -> a small int per distinct ``(name, file)``, assigned on first use."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: "Dict[Tuple[str, str], int]" = {}
        self.names: "List[Tuple[str, str]]" = []

    def __missing__(self, frame: "Tuple[str, str, int]") -> int:
        named = (frame[0], frame[1])
        fid = self.ids.get(named)
        if fid is None:
            fid = self.ids[named] = len(self.names)
            self.names.append(named)
        self[frame] = fid
        return fid


class SortedStacks:
    """The stacks of a profile set once (cut to ``max_depth`` frames), root first as ints per
    ``(name, file)``, sorted, equal ones merged, with each one's common prefix length with the one
    before (``lcp``): what
    :func:`build_tree` walks, shared by the trees of every sample type of one page."""

    def __init__(self, profiles: ProfileSet, max_depth: int = MAX_DEPTH) -> None:
        frame_id = _FrameIds()
        get = frame_id.__getitem__
        rows = [
            (tuple(map(get, reversed(_page_stack(sample.frames, max_depth)))), sample.values)
            for sample in profiles.samples
            if sample.values
        ]
        rows.sort(key=itemgetter(0))
        self.names = frame_id.names
        self.stacks: "List[tuple]" = []
        self.values: "List[Dict[str, int]]" = []
        self.lcp: "List[int]" = []
        previous = None
        for stack, values in rows:
            if stack == previous:
                merged = self.values[-1] = dict(self.values[-1])
                for name, value in values.items():
                    merged[name] = merged.get(name, 0) + value
                continue
            self.lcp.append(_common_prefix(stack, previous) if previous is not None else 0)
            self.stacks.append(stack)
            self.values.append(values)
            previous = stack

    def of_type(self, sample_type: str) -> "Tuple[List[tuple], List[int], List[int]]":
        """(stacks, values, lcp with the previous stack kept) of the stacks with a ``sample_type`` value."""
        stacks, values, lcps = [], [], []
        run = 0  # the common prefix with the last kept stack is the least lcp since it (sorted order)
        for stack, row, lcp in zip(self.stacks, self.values, self.lcp):
            run = min(run, lcp)
            value = row.get(sample_type, 0)
            if value:
                stacks.append(stack)
                values.append(value)
                lcps.append(run)
                run = 1 << 62
        return stacks, values, lcps


def _common_prefix(a: tuple, b: tuple) -> int:
    # Largest n with a[:n] == b[:n], comparing slices (in C) by bisection: deep stacks stay cheap.
    lo, hi = 0, min(len(a), len(b))
    if a[:hi] == b[:hi]:
        return hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid
    return lo


def _walk(stacks: SortedStacks, sample_type: str, threshold: int, scale: float, histogram: "Optional[List[int]]") -> dict:
    # One pass over the sorted stacks, keeping the path of open frames: a frame is closed (its
    # value final) when the next stack leaves it. The frames of a stack past what it shares with
    # either neighbour are its own (sorted order), their value its value: handled at once, not
    # frame by frame. With ``histogram``, only count frames by bit length of their value; else
    # build the tree of the frames of at least ``threshold``.
    names = stacks.names
    by_value = itemgetter("value")
    pending = [[-1, 0, []]]  # the open path, root first: [frame id, value, kept children]

    def close() -> None:
        fid, value, kids = pending.pop()
        parent = pending[-1]
        parent[1] += value
        if histogram is not None:
            histogram[abs(value).bit_length()] += 1
        elif abs(value) >= threshold:
            kids.sort(key=by_value, reverse=True)
            name, filename = names[fid]
            parent[2].append({"name": name, "file": filename, "value": value * scale, "children": kids})

    rows, values, lcps = stacks.of_type(sample_type)
    count = len(rows)
    for i in range(count):
        stack, value, keep = rows[i], values[i], lcps[i]
        shared = max(keep, lcps[i + 1] if i + 1 < count else 0)
        while len(pending) > keep + 1:
            close()
        for fid in stack[keep:shared]:
            pending.append([fid, 0, []])
        top = pending[-1]
        top[1] += value
        own = len(stack) - shared
        if own:
            if histogram is not None:
                histogram[abs(value).bit_length()] += own
            elif abs(value) >= threshold:
                chain: "List[dict]" = []
                for fid in reversed(stack[shared:]):
                    name, filename = names[fid]
                    chain = [{"name": name, "file": filename, "value": value * scale, "children": chain}]
                top[2].extend(chain)
    while len(pending) > 1:
        close()
    _fid, value, kids = pending[0]
    kids.sort(key=by_value, reverse=True)
    return {"name": "all", "file": "", "value": value * scale, "children": kids}


def build_tree(profiles: ProfileSet, sample_type: str, scale: float = 1.0, max_nodes: int = MAX_NODES,
               stacks: "Optional[SortedStacks]" = None) -> dict:
    """The call tree of ``sample_type``: ``{name, file, value, children}``, root first, frames merged by
    function and file along each path, children largest first; values multiplied by ``scale``.
    At most about ``max_nodes`` frames: when there are more, those of the smallest values are left
    out (their value stays in their parent's). Built without recursion from the stacks in sorted
    order (``stacks``, made from ``profiles`` when not given), in memory for the kept frames plus
    the stacks, whatever the depth."""
    stacks = stacks or SortedStacks(profiles)
    histogram = [0] * 66
    _walk(stacks, sample_type, 0, scale, histogram)
    threshold, kept = 0, sum(histogram)
    for bits, count in enumerate(histogram):  # the smallest power of two that keeps max_nodes at most
        if kept <= max_nodes:
            break
        kept -= count
        threshold = 1 << bits
    return _walk(stacks, sample_type, threshold, scale, None)


def _own(node: dict) -> float:
    return node["value"] - sum(c["value"] for c in node["children"])


def diff_tree(base: ProfileSet, new: ProfileSet, sample_type: str) -> dict:
    """The new profile's tree (per second when both durations are known) where each node carries
    ``delta``: its self value minus the base's self value at the same path."""
    per_second = bool(base.duration_ns and new.duration_ns)
    new_tree = build_tree(new, sample_type, 1e9 / new.duration_ns if per_second else 1.0)
    base_tree = build_tree(base, sample_type, 1e9 / base.duration_ns if per_second else 1.0)
    todo = [(new_tree, base_tree)]
    while todo:
        node, match = todo.pop()
        node["delta"] = _own(node) - (_own(match) if match is not None else 0.0)
        twins = {(c["name"], c["file"]): c for c in match["children"]} if match is not None else {}
        for child in node["children"]:
            todo.append((child, twins.get((child["name"], child["file"]))))
    return new_tree


def flatten(tree: dict, strings: "Dict[str, int]") -> dict:
    """``tree`` as the page carries it: ``nodes``, a flat list of ``stride`` integers per node in
    depth-first order (parent index, name and file as indices into ``strings``, rounded value, and
    rounded delta when the tree has them), so no depth of stack nests the JSON or the script."""
    stride = 5 if "delta" in tree else 4
    nodes: "List[int]" = []
    todo = [(tree, -1)]
    index = 0
    while todo:
        node, parent = todo.pop()
        for text in (node["name"], node["file"]):
            if text not in strings:
                strings[text] = len(strings)
        nodes += (parent, strings[node["name"]], strings[node["file"]], int(round(node["value"])))
        if stride == 5:
            nodes.append(int(round(node.get("delta", 0))))
        todo.extend((child, index) for child in reversed(node["children"]))
        index += 1
    return {"stride": stride, "nodes": nodes}


def inflate(flat: dict, strings: "List[str]") -> dict:
    """The nested tree back from :func:`flatten`'s form (what the page's script does)."""
    nodes, stride = flat["nodes"], flat["stride"]
    made: "List[dict]" = []
    for i in range(0, len(nodes), stride):
        node = {"name": strings[nodes[i + 1]], "file": strings[nodes[i + 2]], "value": nodes[i + 3], "children": []}
        if stride == 5:
            node["delta"] = nodes[i + 4]
        if nodes[i] >= 0:
            made[nodes[i]]["children"].append(node)
        made.append(node)
    return made[0]


def _asset(name: str) -> str:
    with open(os.path.join(ASSETS, name), encoding="utf-8") as f:
        return f.read()


def _script_safe(text: str) -> str:
    # JSON inside <script>: a "</script>" in a function or file name must not end the element.
    return text.replace("</", "<\\/").replace("<!--", "<\\!--")


def render(trees: "Dict[str, dict]", units: "Dict[str, str]", title: str, differential: bool = False,
           endpoints: "Optional[Dict[str, Dict[str, dict]]]" = None) -> str:
    """The HTML page for ``trees`` (one per sample type), and for each endpoint of ``endpoints``
    (``{endpoint: trees}``) the trees of its samples alone, chosen in the page."""
    strings: "Dict[str, int]" = {}
    flat = {t: flatten(tree, strings) for t, tree in trees.items()}
    by_endpoint = {e: {t: flatten(tree, strings) for t, tree in per.items()} for e, per in (endpoints or {}).items()}
    data = {"title": title, "differential": differential, "units": units, "strings": list(strings), "trees": flat,
            "endpoints": by_endpoint}
    return PAGE.format(
        title=_html_escape(title),
        css=_asset("d3-flamegraph.css"),
        d3=_script_safe(_asset("d3.v7.min.js")),
        flamegraph=_script_safe(_asset("d3-flamegraph.min.js")),
        data=json.dumps(data, separators=(",", ":")).replace("<", "\\u003c"),  # no tag can start in the data
        app=APP,
    )


def _html_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


PREFERRED = ("cpu-time", "wall-time", "alloc-space", "heap-space", "lock-acquire-wait", "lock-release-hold", "exception-samples")


def types_with_data(profiles: ProfileSet) -> "List[str]":
    """Sample types that have at least one non-zero value: the most telling first, then in profile order."""
    found = [t for t in profiles.types() if any(s.values.get(t) for s in profiles.samples)]
    return [t for t in PREFERRED if t in found] + [t for t in found if t not in PREFERRED]


MAX_ENDPOINTS = 20  # endpoints the page can show alone, the heaviest first


def endpoints_of(profiles: ProfileSet, sample_type: str, limit: int = MAX_ENDPOINTS) -> "List[str]":
    """The ``trace endpoint`` labels of ``profiles``, heaviest in ``sample_type`` first."""
    totals: "Dict[str, int]" = {}
    for sample in profiles.samples:
        endpoint = sample.labels.get("trace endpoint")
        if isinstance(endpoint, str):
            totals[endpoint] = totals.get(endpoint, 0) + sample.values.get(sample_type, 0)
    return sorted(totals, key=lambda e: (-totals[e], e))[:limit]


def flamegraph_html(profiles: ProfileSet, sample_types: "Iterable[str]", title: str) -> str:
    """A page with a flame graph of each of ``sample_types``, and of each endpoint's samples alone
    (an Endpoint selector, when the samples carry ``trace endpoint``)."""
    sample_types = list(sample_types)
    stacks = SortedStacks(profiles)
    trees = {t: build_tree(profiles, t, stacks=stacks) for t in sample_types}
    endpoints = {}
    for endpoint in endpoints_of(profiles, sample_types[0]) if sample_types else []:
        alone = ProfileSet(samples=[x for x in profiles.samples if x.labels.get("trace endpoint") == endpoint],
                           units=profiles.units, estimated=profiles.estimated, duration_ns=profiles.duration_ns)
        endpoints[endpoint] = {t: build_tree(alone, t) for t in sample_types}
    return render(trees, profiles.units, title, endpoints=endpoints)


def diff_html(base: ProfileSet, new: ProfileSet, sample_types: "Iterable[str]", title: str) -> str:
    """A differential page: the new profile, coloured by change against ``base``."""
    return render({t: diff_tree(base, new, t) for t in sample_types}, new.units, title, differential=True)


PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>{css}</style>
<style>
body {{ font-family: Verdana, sans-serif; margin: 12px; }}
header {{ display: flex; gap: 12px; align-items: center; flex-wrap: wrap; margin-bottom: 8px; }}
h1 {{ font-size: 16px; margin: 0 12px 0 0; }}
#details {{ min-height: 1.5em; font-size: 13px; color: #333; margin: 6px 0; white-space: pre; }}
#status {{ display: none; }}
</style>
</head>
<body>
<header>
<h1>{title}</h1>
<label>Sample type <select id="type"></select></label>
<label id="endpoint-label" hidden>Endpoint <select id="endpoint"><option value="">all</option></select></label>
<input id="search" type="search" placeholder="Search functions or files">
<button id="reset">Reset zoom</button>
<span id="summary"></span>
</header>
<div id="details"></div>
<div id="chart"></div>
<div id="status"></div>
<script>{d3}</script>
<script>{flamegraph}</script>
<script>const PROFILE = {data};</script>
<script>{app}</script>
</body>
</html>
"""

# The page's own code: sample-type switching, human units, search box, the status element tests read.
APP = r"""
(function () {
  "use strict";
  const select = document.getElementById("type");
  const search = document.getElementById("search");
  const details = document.getElementById("details");
  const status = document.getElementById("status");
  const summary = document.getElementById("summary");
  let chart = null, current = null, searchTerm = "";

  function human(value, unit) {
    const v = Math.abs(value), sign = value < 0 ? "-" : "";
    if (unit === "nanoseconds") {
      if (v >= 1e9) return sign + (v / 1e9).toFixed(2) + " s";
      if (v >= 1e6) return sign + (v / 1e6).toFixed(2) + " ms";
      if (v >= 1e3) return sign + (v / 1e3).toFixed(2) + " \u00b5s";
      return sign + v + " ns";
    }
    if (unit === "bytes") {
      const units = ["B", "KiB", "MiB", "GiB", "TiB"];
      let i = 0, x = v;
      while (x >= 1024 && i < units.length - 1) { x /= 1024; i++; }
      return sign + (i ? x.toFixed(2) : x) + " " + units[i];
    }
    return sign + v.toLocaleString("en-US");
  }

  const endpointSelect = document.getElementById("endpoint");
  let endpoint = "";  // "" : every sample; else one endpoint's alone
  function setStatus(extra) {
    for (const k in extra) status.dataset[k] = extra[k];
    status.dataset.type = current;
    status.dataset.endpoint = endpoint;
    status.dataset.frames = document.querySelectorAll("#chart g.frame").length;
  }

  // The trees come flat (see flatten() in flamegraph.py): nested here, in a loop, whatever the depth.
  const inflated = {};
  function treesShown() { return endpoint ? PROFILE.endpoints[endpoint] : PROFILE.trees; }
  function inflate(type) {
    const key = endpoint + "\u0000" + type;
    if (inflated[key]) return inflated[key];
    const flat = treesShown()[type], nodes = flat.nodes, stride = flat.stride, strings = PROFILE.strings;
    const made = [];
    for (let i = 0; i < nodes.length; i += stride) {
      const node = { name: strings[nodes[i + 1]], file: strings[nodes[i + 2]], value: nodes[i + 3], children: [] };
      if (stride === 5) node.delta = nodes[i + 4];
      if (nodes[i] >= 0) made[nodes[i]].children.push(node);
      made.push(node);
    }
    return (inflated[key] = made[0]);
  }

  function draw(type) {
    current = type;
    const unit = PROFILE.units[type] || "count";
    const tree = inflate(type);
    document.getElementById("chart").innerHTML = "";
    const width = Math.max(600, document.body.clientWidth - 24);
    chart = flamegraph.default()
      .width(width)
      .cellHeight(18)
      .minFrameSize(1)
      .transitionDuration(0)
      .title("")
      .selfValue(false)
      .setDetailsElement(details)
      .setDetailsHandler(function (d) {
        if (!d) { details.textContent = ""; return; }
        const total = tree.value || 1;
        let text = d.data.name + (d.data.file ? "  (" + d.data.file + ")" : "") +
          "  " + human(d.value, unit) + "  " + (100 * d.value / total).toFixed(2) + "%";
        if (PROFILE.differential) text += "  change " + human(d.data.delta || 0, unit);
        details.textContent = text;
      })
      .onClick(function (d) { setStatus({ zoomed: d.data.name }); })
      .setSearchMatch(function (d, term) {  // function or file name, any case
        if (!term) return false;
        const t = String(term).toLowerCase();
        const data = d.data || d;
        return (data.name || "").toLowerCase().indexOf(t) >= 0 || (data.file || "").toLowerCase().indexOf(t) >= 0;
      })
      .setSearchHandler(function (results, sum, total) {
        summary.textContent = searchTerm ? results.length + " frames match, " + human(sum, unit) +
          " (" + (100 * sum / (total || 1)).toFixed(1) + "%)" : "";
        setStatus({ matches: results.length, matchedValue: sum });
      });
    if (PROFILE.differential) {
      chart.computeDelta(true).getDelta(function (d) { return d.data ? (d.data.delta || 0) : (d.delta || 0); })
        .setColorMapper(flamegraph.colorMapper.differentialColorMapper);
    }
    const tip = flamegraph.tooltip && flamegraph.tooltip.defaultFlamegraphTooltip
      ? flamegraph.tooltip.defaultFlamegraphTooltip().text(function (d) {
          return d.data.name + ": " + human(d.value, unit);
        })
      : null;
    if (tip) chart.tooltip(tip);
    d3.select("#chart").datum(tree).call(chart);
    summary.textContent = "total " + human(tree.value, unit);
    setStatus({ zoomed: "", matches: 0, total: tree.value });
    if (searchTerm) chart.search(searchTerm);
  }

  const types = Object.keys(PROFILE.trees);
  for (const t of types) {
    const option = document.createElement("option");
    option.value = option.textContent = t;
    select.appendChild(option);
  }
  select.addEventListener("change", function () { draw(select.value); });
  const endpointNames = Object.keys(PROFILE.endpoints || {});
  for (const e of endpointNames) {
    const option = document.createElement("option");
    option.value = option.textContent = e;
    endpointSelect.appendChild(option);
  }
  if (endpointNames.length) document.getElementById("endpoint-label").hidden = false;
  endpointSelect.addEventListener("change", function () { endpoint = endpointSelect.value; draw(current); });
  search.addEventListener("input", function () {
    searchTerm = search.value;
    if (searchTerm) chart.search(searchTerm); else { chart.clear(); setStatus({ matches: 0 }); summary.textContent = ""; }
  });
  document.getElementById("reset").addEventListener("click", function () { chart.resetZoom(); setStatus({ zoomed: "" }); });

  // Deep links (and what the tests use): #type=wall-time&search=foo&zoom=bar
  const params = new URLSearchParams(location.hash.slice(1));
  const first = params.get("type") && PROFILE.trees[params.get("type")] ? params.get("type") : types[0];
  if (!first) { status.dataset.frames = 0; return; }
  if (params.get("endpoint") && PROFILE.endpoints && PROFILE.endpoints[params.get("endpoint")]) {
    endpoint = endpointSelect.value = params.get("endpoint");
  }
  select.value = first;
  draw(first);
  if (params.get("search")) {
    search.value = searchTerm = params.get("search");
    chart.search(searchTerm);
  }
  function frameCount() { return document.querySelectorAll("#chart g.frame").length; }
  // d3 transitions run on its timer even at duration 0: read the drawing after them
  setTimeout(function () {
    const name = params.get("zoom");
    if (!name) { setStatus({}); status.dataset.ready = "1"; return; }
    status.dataset.framesBeforeZoom = frameCount();
    const target = Array.from(document.querySelectorAll("#chart g.frame")).find(function (g) {
      return g.getAttribute("name") === name;
    });
    if (target) target.dispatchEvent(new MouseEvent("click", { bubbles: true }));
    setTimeout(function () {
      setStatus({});
      status.dataset.ready = "1";
    }, 1000);
  }, 1000);
})();
"""
