"""Check what ``pip install --report REPORT --find-links DIST "pyprof-dd[all]"`` put into a fresh venv.

``python check-install.py REPORT DIST`` (run by that venv's interpreter, from scripts/check-install.sh).
Passes when: every one of our distributions came from a file in DIST (not from the package index);
everything else installed is a declared requirement of ours, or of those requirements, through the
extras asked for; and the venv holds nothing besides those, pip and setuptools. Prints what got
installed, from where; exits 1 naming each problem.
"""

from __future__ import annotations

import json
import os
import re
import sys
from importlib import metadata
from typing import Dict, List, Set
from urllib.parse import unquote, urlparse

OURS = {
    "pyprof-dd",
    "pyprof-dd-core",
    "pyprof-dd-collector-stack",
    "pyprof-dd-collector-lock",
    "pyprof-dd-collector-memory",
    "pyprof-dd-collector-exception",
    "pyprof-dd-exporter-agent",
}
ROOT, ROOT_EXTRAS = "pyprof-dd", {"all"}
VENV_OWN = {"pip", "setuptools", "wheel"}
REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[([^\]]*)\])?[^;]*(?:;(.*))?$")
EXTRA_MARKER = re.compile(r"""extra\s*==\s*['"]([^'"]+)['"]""")


def normalize(name: str) -> str:
    """PEP 503 name: lower case, runs of - _ . as one dash."""
    return re.sub(r"[-_.]+", "-", name).lower()


def declared_closure(items: Dict[str, dict]) -> Set[str]:
    """Names reachable from pyprof-dd[all] through Requires-Dist of what the report installed.

    A requirement under an extra counts only when that extra is asked for; other markers
    (python_version, platform) count as met: an over-approximation, the set of what may be there.
    """
    wanted: Dict[str, Set[str]] = {ROOT: set(ROOT_EXTRAS)}
    todo = [ROOT]
    while todo:
        name = todo.pop()
        item = items.get(name)
        if item is None:
            continue
        for req in item["metadata"].get("requires_dist", []):
            match = REQUIREMENT.match(req)
            if not match:
                continue
            dep, extras, marker = normalize(match.group(1)), match.group(2), match.group(3) or ""
            needs = EXTRA_MARKER.findall(marker)
            if needs and not (set(needs) & wanted[name]):
                continue
            dep_extras = {e.strip() for e in (extras or "").split(",") if e.strip()}
            if dep not in wanted or not dep_extras <= wanted[dep]:
                wanted.setdefault(dep, set()).update(dep_extras)
                todo.append(dep)
    return set(wanted)


def main(report_path: str, dist_dir: str) -> int:
    with open(report_path) as f:
        report = json.load(f)
    items = {normalize(i["metadata"]["name"]): i for i in report["install"]}
    problems: List[str] = []
    dist_dir = os.path.realpath(dist_dir)
    for name, item in sorted(items.items()):
        url = item["download_info"]["url"]
        where = urlparse(url)
        local = os.path.dirname(os.path.realpath(unquote(where.path))) if where.scheme == "file" else ""
        origin = "DIST" if local == dist_dir else local or where.netloc or where.scheme
        print("  %-32s %-10s from %s" % (name, item["metadata"]["version"], origin))
        if name in OURS:
            path = os.path.realpath(unquote(where.path)) if where.scheme == "file" else ""
            if os.path.dirname(path) != dist_dir:
                problems.append("%s came from %s, not from %s" % (name, url, dist_dir))
            if not path.endswith(".whl"):
                problems.append("%s was not installed from a wheel (%s)" % (name, url))
    missing = OURS - set(items)
    if missing:
        problems.append("not installed: %s" % ", ".join(sorted(missing)))
    allowed = declared_closure(items)
    stray = set(items) - allowed
    if stray:
        problems.append("installed but not a declared requirement: %s" % ", ".join(sorted(stray)))
    present = {normalize(d.metadata["Name"]) for d in metadata.distributions()}
    extra = present - set(items) - VENV_OWN
    if extra:
        problems.append("in the venv but not installed by this command: %s" % ", ".join(sorted(extra)))
    for problem in problems:
        print("check-install: %s" % problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
