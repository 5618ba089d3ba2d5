"""``profiler-run``: run a command with the profiler started inside every Python process it launches.

Shaped like ``ddtrace-run``: ``profiler-run [options] python app.py args...``.
Options set the matching ``DD_*`` variables; the bootstrap directory goes in
front of ``PYTHONPATH`` so its ``sitecustomize`` starts the profiler; then the
command replaces this process (``exec``), so its exit code and signals are its own.
The command line is parsed by hand: ``argparse`` and ``shutil`` would add
milliseconds to the start of every launched program.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing costs milliseconds to import
if TYPE_CHECKING:
    from typing import Dict, List, Optional

BOOTSTRAP_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bootstrap")

COLLECTORS = ("stack", "lock", "memory", "heap", "exception")

#: option -> (variable it sets, help)
VALUE_OPTIONS = {
    "--output": ("DD_PROFILING_OUTPUT_PPROF", "DIR: write profiles as pprof files into DIR (no agent upload)"),
    "--service": ("DD_SERVICE", "service name"),
    "--env": ("DD_ENV", "environment"),
    "--version": ("DD_VERSION", "application version"),
    "--tags": ("DD_PROFILING_TAGS", "extra tags k:v,k2:v2"),
    "--url": ("DD_TRACE_AGENT_URL", "agent URL"),
    "--upload-interval": ("DD_PROFILING_UPLOAD_INTERVAL", "SECONDS between profiles"),
    "--enable": ("", "enable a collector: " + ", ".join(COLLECTORS)),
    "--disable": ("", "disable a collector: " + ", ".join(COLLECTORS)),
}

USAGE = "usage: profiler-run [options] COMMAND [ARGS...]\n       profiler-run --version\n"


class UsageError(Exception):
    """A command line profiler-run cannot run."""


def help_text() -> str:
    """The ``--help`` text."""
    lines = [USAGE, "Run a program with the continuous profiler enabled.\n", "\noptions:\n"]
    for option, (variable, text) in VALUE_OPTIONS.items():
        lines.append("  %-26s %s%s\n" % (option + " VALUE", text, " (%s)" % variable if variable else ""))
    lines.append("  %-26s %s\n" % ("-V, --version", "alone: show the profiler's installed versions"))
    lines.append("  %-26s %s\n" % ("-h, --help", "show this help"))
    lines.append("\nAny DD_* variable already in the environment applies too; options win over it.\n")
    return "".join(lines)


def parse_args(argv: "List[str]") -> "tuple[Dict[str, List[str]], List[str]]":
    """Split ``argv`` into options (name -> values) and the command; raises UsageError."""
    options: "Dict[str, List[str]]" = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            i += 1
            break
        if not arg.startswith("-") or arg == "-":
            break
        if arg in ("-h", "--help"):
            options["--help"] = []
            i += 1
            continue
        if arg == "-V" or (arg == "--version" and i == len(argv) - 1):
            # ``--version VALUE`` sets DD_VERSION; with nothing after it, it asks for ours.
            options["-V"] = []
            i += 1
            continue
        name, eq, value = arg.partition("=")
        if name not in VALUE_OPTIONS:
            raise UsageError("unknown option %s" % name)
        if not eq:
            i += 1
            if i >= len(argv):
                raise UsageError("%s needs a value" % name)
            value = argv[i]
        if name in ("--enable", "--disable") and value not in COLLECTORS:
            raise UsageError("%s takes one of %s, not %r" % (name, ", ".join(COLLECTORS), value))
        if name == "--upload-interval":
            try:
                float(value)
            except ValueError:
                raise UsageError("--upload-interval takes a number of seconds, not %r" % value) from None
        options.setdefault(name, []).append(value)
        i += 1
    return options, argv[i:]


#: uWSGI's --py-call-uwsgi-fork-hooks, as an environment variable.
UWSGI_FORK_HOOKS_VARIABLE = "UWSGI_PY_CALL_UWSGI_FORK_HOOKS"


def environment_for(options: "Dict[str, List[str]]", environ: "Dict[str, str]") -> "Dict[str, str]":
    """The environment the command runs with: ``environ`` plus what the options ask for."""
    env = dict(environ)
    env.setdefault("DD_PROFILING_ENABLED", "true")
    # uWSGI forks its workers in C: with this option (read from the environment by uWSGI, by nothing
    # else) it tells CPython about each fork, so the profiler restarts in every worker.
    env.setdefault(UWSGI_FORK_HOOKS_VARIABLE, "true")
    for name, values in options.items():
        variable = VALUE_OPTIONS.get(name, ("",))[0]
        if variable and values:
            env[variable] = values[-1]
    if options.get("--output"):
        directory = os.path.abspath(options["--output"][-1])
        os.makedirs(directory, exist_ok=True)
        env["DD_PROFILING_OUTPUT_PPROF"] = os.path.join(directory, "profile")
    for name in options.get("--enable", []):
        env["DD_PROFILING_%s_ENABLED" % name.upper()] = "true"
    for name in options.get("--disable", []):
        env["DD_PROFILING_%s_ENABLED" % name.upper()] = "false"
    parts = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != BOOTSTRAP_DIR]
    env["PYTHONPATH"] = os.pathsep.join([BOOTSTRAP_DIR] + parts)
    return env


def which(command: str, path: "Optional[str]") -> "Optional[str]":
    """The executable ``command`` resolves to, as the shell would find it, or None."""
    if os.sep in command:
        return command if os.access(command, os.X_OK) and not os.path.isdir(command) else None
    for directory in (path or os.defpath).split(os.pathsep):
        candidate = os.path.join(directory or os.curdir, command)
        if os.access(candidate, os.X_OK) and not os.path.isdir(candidate):
            return candidate
    return None


def main(argv: "Optional[List[str]]" = None) -> int:
    """Parse the options and ``exec`` the command; returns only on error (2: usage, 127: not found)."""
    try:
        options, command = parse_args(list(sys.argv[1:] if argv is None else argv))
    except UsageError as exc:
        sys.stderr.write(USAGE + "profiler-run: %s\n" % exc)
        return 2
    if "--help" in options:
        sys.stdout.write(help_text())
        return 0
    if "-V" in options:
        from profiler.versions import version_text

        sys.stdout.write(version_text("profiler-run"))
        return 0
    if not command:
        sys.stderr.write(USAGE + "profiler-run: no command given\n")
        return 2
    executable = which(command[0], os.environ.get("PATH"))
    if executable is None:
        sys.stderr.write("profiler-run: command not found: %s\n" % command[0])
        return 127
    env = environment_for(options, dict(os.environ))
    if options.get("--output"):
        env["PROFILER_RUN_PID"] = str(os.getpid())  # exec keeps the pid: the program announces its profiles
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(executable, command, env)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
