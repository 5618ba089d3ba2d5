"""scripts/check-dists.py and check-install.py find what must not ship, on made-up files."""

import importlib.util
import io
import os
import tarfile
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load(name):
    spec = importlib.util.spec_from_file_location(name.replace("-", "_"), os.path.join(ROOT, "scripts", name + ".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


check_dists = load("check-dists")
check_install = load("check-install")

LONG = "A long description. " * 20


def metadata(name, license="Apache-2.0", requires=(), classifiers=True):
    lines = ["Metadata-Version: 2.4", "Name: %s" % name, "Version: 0.1.0", "License-Expression: %s" % license,
             "License-File: LICENSE"]
    if classifiers:
        lines += ["Classifier: Operating System :: POSIX :: Linux",
                  "Classifier: Programming Language :: Python :: Implementation :: CPython"]
    lines += ["Requires-Dist: %s" % r for r in requires]
    return "\n".join(lines) + "\n\n" + LONG


def wheel(tmp_path, filename, files):
    path = tmp_path / filename
    with zipfile.ZipFile(path, "w") as z:
        for name, text in files.items():
            z.writestr(name, text)
    return str(path)


def native_wheel(tmp_path, tag="cp311-cp311-manylinux_2_17_x86_64", extra=None, license=True):
    info = "pyprof_dd_collector_stack-0.1.0.dist-info/"
    files = {
        "profiler_stack/__init__.py": "",
        "profiler_stack/_sampler.cpython-311-x86_64-linux-gnu.so": "",
        info + "METADATA": metadata("pyprof-dd-collector-stack", requires=["pyprof-dd-core>=0.1,<0.2"]),
    }
    if license:
        files[info + "licenses/LICENSE"] = "Apache"
    files.update(extra or {})
    return wheel(tmp_path, "pyprof_dd_collector_stack-0.1.0-%s.whl" % tag, files)


def test_a_good_native_wheel_passes(tmp_path):
    assert check_dists.check_wheel(native_wheel(tmp_path)) == []


@pytest.mark.parametrize("kwargs, problem", [
    ({"tag": "cp311-cp311-linux_x86_64"}, "not manylinux"),
    ({"extra": {"profiler_stack/_sampler.c": ""}}, "C source"),
    ({"extra": {"profiler_stack/_sampler.cpython-313-x86_64-linux-gnu.so": ""}}, "another interpreter"),
    ({"extra": {"profiler_stack/__pycache__/x.cpython-311.pyc": ""}}, "bytecode"),
    ({"license": False}, "no LICENSE"),
])
def test_what_must_not_ship_in_a_wheel_is_named(tmp_path, kwargs, problem):
    problems = check_dists.check_wheel(native_wheel(tmp_path, **kwargs))
    assert any(problem in p for p in problems), problems


def test_metadata_problems_are_named():
    problems = check_dists.check_metadata(metadata("pyprof-dd", license="MIT", requires=["pyprof-dd-core>=0.1"],
                                                   classifiers=False), "pyprof-dd")
    text = "; ".join(problems)
    for part in ("license expression", "classifier missing", "without an upper bound"):
        assert part in text, problems


def sdist(tmp_path, files):
    path = tmp_path / "pyprof_dd_collector_stack-0.1.0.tar.gz"
    with tarfile.open(path, "w:gz") as t:
        for name, text in files.items():
            data = text.encode()
            member = tarfile.TarInfo("pyprof_dd_collector_stack-0.1.0/" + name)
            member.size = len(data)
            t.addfile(member, io.BytesIO(data))
    return str(path)


def test_sdist_sources_only(tmp_path):
    good = {"PKG-INFO": metadata("pyprof-dd-collector-stack"), "LICENSE": "", "pyproject.toml": "", "README.md": "",
            "src/profiler_stack/_sampler.pyx": "", "src/profiler_stack/_native/hooks.c": ""}
    assert check_dists.check_sdist(sdist(tmp_path, good)) == []
    bad = dict(good, **{"src/profiler_stack/_sampler.c": "", "src/profiler_stack/_x.cpython-310-x86_64-linux-gnu.so": ""})
    del bad["LICENSE"]
    text = "; ".join(check_dists.check_sdist(sdist(tmp_path, bad)))
    for part in ("no LICENSE", "generated C file", "compiled module"):
        assert part in text


def item(name, requires=(), url="file:///dist/x.whl"):
    return {"metadata": {"name": name, "version": "1", "requires_dist": list(requires)}, "download_info": {"url": url}}


def test_install_closure_follows_extras_asked_for_only():
    items = {
        "pyprof-dd": item("pyprof-dd", ['pyprof-dd-core<0.2,>=0.1', 'zstandard>=0.20; extra == "all"',
                                        'pyprof-dd-exporter-agent; extra == "agent"']),
        "pyprof-dd-core": item("pyprof-dd-core", ["protobuf>=3.20"]),
        "protobuf": item("protobuf"),
        "zstandard": item("zstandard", ['cffi>=1.11; platform_python_implementation == "PyPy"']),
    }
    closure = check_install.declared_closure(items)
    assert {"pyprof-dd", "pyprof-dd-core", "protobuf", "zstandard", "cffi"} == closure  # cffi: marker over-approximated
    assert "pyprof-dd-exporter-agent" not in closure  # extra 'agent' was not asked for
