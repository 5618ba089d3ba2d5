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

from profiler.pprof_reader import ProfileSet

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, Iterable, List, Optional

ASSETS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets")


def _node(name: str, filename: str) -> dict:
    return {"name": name, "file": filename, "value": 0, "children": {}}


def _finish(node: dict) -> dict:
    node["children"] = sorted((_finish(c) for c in node["children"].values()), key=lambda c: -c["value"])
    return node


def build_tree(profiles: ProfileSet, sample_type: str, scale: float = 1.0) -> dict:
    """The call tree of ``sample_type``: ``{name, file, value, children}``, root first, frames merged by
    function and file along each path; values multiplied by ``scale``."""
    root = _node("all", "")
    for sample in profiles.samples:
        value = sample.values.get(sample_type, 0) * scale
        if not value:
            continue
        node = root
        node["value"] += value
        for name, filename, _line in reversed(sample.frames):
            key = (name, filename)
            child = node["children"].get(key)
            if child is None:
                child = node["children"][key] = _node(name, filename)
            child["value"] += value
            node = child
    return _finish(root)


def _self_values(tree: dict, path: tuple = (), out: "Optional[Dict[tuple, float]]" = None) -> "Dict[tuple, float]":
    out = {} if out is None else out
    key = path + ((tree["name"], tree["file"]),)
    out[key] = tree["value"] - sum(c["value"] for c in tree["children"])
    for child in tree["children"]:
        _self_values(child, key, out)
    return out


def diff_tree(base: ProfileSet, new: ProfileSet, sample_type: str) -> dict:
    """The new profile's tree (per second when both durations are known) where each node carries
    ``delta``: its self value minus the base's self value at the same path."""
    per_second = bool(base.duration_ns and new.duration_ns)
    new_tree = build_tree(new, sample_type, 1e9 / new.duration_ns if per_second else 1.0)
    base_self = _self_values(build_tree(base, sample_type, 1e9 / base.duration_ns if per_second else 1.0))

    def annotate(node: dict, path: tuple) -> None:
        key = path + ((node["name"], node["file"]),)
        own = node["value"] - sum(c["value"] for c in node["children"])
        node["delta"] = own - base_self.get(key, 0.0)
        for child in node["children"]:
            annotate(child, key)

    annotate(new_tree, ())
    return new_tree


def _rounded(tree: dict) -> dict:
    tree["value"] = int(round(tree["value"]))
    if "delta" in tree:
        tree["delta"] = int(round(tree["delta"]))
    for child in tree["children"]:
        _rounded(child)
    return tree


def _asset(name: str) -> str:
    with open(os.path.join(ASSETS, name), encoding="utf-8") as f:
        return f.read()


def _script_safe(text: str) -> str:
    # JSON inside <script>: a "</script>" in a function or file name must not end the element.
    return text.replace("</", "<\\/").replace("<!--", "<\\!--")


def render(trees: "Dict[str, dict]", units: "Dict[str, str]", title: str, differential: bool = False) -> str:
    """The HTML page for ``trees`` (one per sample type)."""
    data = {"title": title, "differential": differential, "units": units, "trees": {t: _rounded(tree) for t, tree in trees.items()}}
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


def flamegraph_html(profiles: ProfileSet, sample_types: "Iterable[str]", title: str) -> str:
    """A page with a flame graph of each of ``sample_types``."""
    return render({t: build_tree(profiles, t) for t in sample_types}, profiles.units, title)


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

  function setStatus(extra) {
    for (const k in extra) status.dataset[k] = extra[k];
    status.dataset.type = current;
    status.dataset.frames = document.querySelectorAll("#chart g.frame").length;
  }

  function draw(type) {
    current = type;
    const unit = PROFILE.units[type] || "count";
    const tree = PROFILE.trees[type];
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
  search.addEventListener("input", function () {
    searchTerm = search.value;
    if (searchTerm) chart.search(searchTerm); else { chart.clear(); setStatus({ matches: 0 }); summary.textContent = ""; }
  });
  document.getElementById("reset").addEventListener("click", function () { chart.resetZoom(); setStatus({ zoomed: "" }); });

  // Deep links (and what the tests use): #type=wall-time&search=foo&zoom=bar
  const params = new URLSearchParams(location.hash.slice(1));
  const first = params.get("type") && PROFILE.trees[params.get("type")] ? params.get("type") : types[0];
  if (!first) { status.dataset.frames = 0; return; }
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
