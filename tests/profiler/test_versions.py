"""``--version`` on both commands, and the distribution names they report."""

import glob
import importlib
import os
import re

import pytest

import profiler
from profiler import cli, run
from profiler.versions import DISTRIBUTIONS, installed_versions

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_distributions_are_the_repository_packages_with_the_meta_package_first():
    names = set()
    for path in glob.glob(os.path.join(ROOT, "packages", "*", "pyproject.toml")):
        with open(path) as f:  # tomllib is 3.11+
            names.add(re.search(r'^name = "([^"]+)"$', f.read(), re.M).group(1))
    assert set(DISTRIBUTIONS) == names
    assert DISTRIBUTIONS[0] == "pyprof-dd"


IMPORTS = {
    "pyprof-dd": "profiler",
    "pyprof-dd-core": "profiler_core",
    "pyprof-dd-collector-stack": "profiler_stack",
    "pyprof-dd-collector-lock": "profiler_lock",
    "pyprof-dd-collector-memory": "profiler_memory",
    "pyprof-dd-collector-exception": "profiler_exception",
    "pyprof-dd-exporter-agent": "profiler_agent",
}


def test_every_distribution_of_this_checkout_is_installed_at_its_version():
    expected = {name: importlib.import_module(module).__version__ for name, module in IMPORTS.items()}
    assert dict(installed_versions()) == expected


@pytest.mark.parametrize("argv", [["--version"], ["-V"]])
def test_profiler_version(argv, capsys):
    with pytest.raises(SystemExit) as exit:
        cli.main(argv)
    assert exit.value.code == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "profiler %s" % profiler.__version__
    assert [line.split()[0] for line in lines[1:]] == list(DISTRIBUTIONS)


@pytest.mark.parametrize("argv", [["--version"], ["-V"], ["--service", "s", "--version"]])
def test_profiler_run_version(argv, capsys):
    assert run.main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "profiler-run %s" % profiler.__version__
    assert [line.split()[0] for line in lines[1:]] == list(DISTRIBUTIONS)


def test_profiler_run_version_with_a_value_is_still_the_application_version():
    options, command = run.parse_args(["--version", "1.2", "python", "app.py"])
    assert options == {"--version": ["1.2"]} and command == ["python", "app.py"]
    assert run.environment_for(options, {})["DD_VERSION"] == "1.2"
