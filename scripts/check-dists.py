"""Check built sdists and wheels before release: every distribution there, complete, nothing stray.

``python scripts/check-dists.py FILE...`` (what scripts/build-dists.sh built). For each wheel: the
LICENSE inside, metadata naming the distribution with its license and classifiers, the import
package it should carry, no C sources, compiled modules only for the interpreter the wheel is
tagged for (native wheels on a manylinux tag), no bytecode. For each sdist: LICENSE, PKG-INFO and
pyproject.toml, sources only (no compiled module, no C file Cython generates from a .pyx).
Prints one line per file; exits 1 naming every problem found.
"""

from __future__ import annotations

import email.parser
import os
import re
import sys
import tarfile
import zipfile
from typing import Dict, List, Tuple

#: distribution -> (import package, has compiled modules)
EXPECTED: Dict[str, Tuple[str, bool]] = {
    "pyprof-dd": ("profiler", False),
    "pyprof-dd-core": ("profiler_core", False),
    "pyprof-dd-collector-stack": ("profiler_stack", True),
    "pyprof-dd-collector-lock": ("profiler_lock", True),
    "pyprof-dd-collector-memory": ("profiler_memory", True),
    "pyprof-dd-collector-exception": ("profiler_exception", True),
    "pyprof-dd-exporter-agent": ("profiler_agent", False),
}
C_SOURCES = (".c", ".h", ".cpp")


def dist_name(filename: str) -> str:
    """The distribution a wheel or sdist file name belongs to (normalized with dashes)."""
    return os.path.basename(filename).split("-")[0].replace("_", "-")


def check_metadata(text: str, name: str) -> List[str]:
    """Problems of a METADATA / PKG-INFO text for distribution ``name``."""
    meta = email.parser.Parser().parsestr(text)
    problems = []
    if meta["Name"] != name:
        problems.append("metadata names %r" % meta["Name"])
    if meta["License-Expression"] != "Apache-2.0":
        problems.append("license expression %r" % meta["License-Expression"])
    if "LICENSE" not in (meta.get_all("License-File") or []):
        problems.append("no License-File: LICENSE")
    classifiers = meta.get_all("Classifier") or []
    for wanted in ("Operating System :: POSIX :: Linux", "Programming Language :: Python :: Implementation :: CPython"):
        if wanted not in classifiers:
            problems.append("classifier missing: %s" % wanted)
    for req in meta.get_all("Requires-Dist") or []:
        if req.startswith("pyprof-dd") and "<" not in req:
            problems.append("requirement on our own package without an upper bound: %s" % req)
    if len(meta.get_payload() or "") < 200:
        problems.append("long description shorter than 200 characters")
    return problems


def check_wheel(path: str) -> List[str]:
    """Problems of one wheel."""
    name = dist_name(path)
    package, native = EXPECTED[name]
    tag = os.path.basename(path)[:-4].split("-")[-3:]  # python, abi, platform
    with zipfile.ZipFile(path) as wheel:
        names = wheel.namelist()
        dist_info = [n for n in names if n.endswith(".dist-info/METADATA")]
        problems = check_metadata(wheel.read(dist_info[0]).decode(), name) if dist_info else ["no METADATA"]
    if not any(re.search(r"\.dist-info/licenses/LICENSE$", n) for n in names):
        problems.append("no LICENSE in .dist-info/licenses/")
    if not any(n.startswith(package + "/") for n in names):
        problems.append("no %s/ package" % package)
    problems += ["C source %s" % n for n in names if n.endswith(C_SOURCES)]
    problems += ["bytecode %s" % n for n in names if n.endswith(".pyc") or "__pycache__" in n]
    modules = [n for n in names if n.endswith(".so")]
    if native:
        if not tag[2].startswith("manylinux"):
            problems.append("platform tag %s is not manylinux" % tag[2])
        if not modules:
            problems.append("no compiled module")
        suffix = ".cpython-%s-x86_64-linux-gnu.so" % tag[0][2:]
        problems += ["module of another interpreter %s (wheel is %s)" % (n, tag[0]) for n in modules if not n.endswith(suffix)]
    else:
        if tag != ["py3", "none", "any"]:
            problems.append("pure package tagged %s" % "-".join(tag))
        problems += ["compiled module in a pure wheel: %s" % n for n in modules]
    return problems


def check_sdist(path: str) -> List[str]:
    """Problems of one sdist."""
    name = dist_name(path)
    package, native = EXPECTED[name]
    with tarfile.open(path) as sdist:
        members = sdist.getnames()
        top = members[0].split("/")[0]
        pkg_info = sdist.extractfile(top + "/PKG-INFO")
        problems = check_metadata(pkg_info.read().decode(), name) if pkg_info else ["no PKG-INFO"]
    inside = {m[len(top) + 1:] for m in members if m.startswith(top + "/")}
    for wanted in ("LICENSE", "pyproject.toml", "README.md"):
        if wanted not in inside:
            problems.append("no %s" % wanted)
    if not any(m.startswith("src/%s/" % package) for m in inside):
        problems.append("no src/%s/" % package)
    if native and not any(m.endswith(".pyx") for m in inside):
        problems.append("no .pyx source")
    problems += ["compiled module %s" % m for m in inside if m.endswith(".so")]
    problems += ["bytecode %s" % m for m in inside if m.endswith(".pyc") or "__pycache__" in m]
    problems += ["generated C file %s" % m for m in inside if m.endswith(".c") and m[:-2] + ".pyx" in inside]
    return problems


def main(paths: List[str]) -> int:
    """Check every file; also that each distribution has one sdist and at least one wheel."""
    failed = False
    seen: Dict[str, set] = {name: set() for name in EXPECTED}
    for path in paths:
        name = dist_name(path)
        if name not in EXPECTED:
            print("%s: not one of our distributions" % path)
            failed = True
            continue
        kind = "wheel" if path.endswith(".whl") else "sdist"
        seen[name].add(kind)
        problems = check_wheel(path) if kind == "wheel" else check_sdist(path)
        print("%s %s: %s" % (kind, os.path.basename(path), "; ".join(problems) or "ok"))
        failed = failed or bool(problems)
    for name, kinds in seen.items():
        if kinds != {"wheel", "sdist"}:
            print("%s: missing %s" % (name, " and ".join(sorted({"wheel", "sdist"} - kinds))))
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
