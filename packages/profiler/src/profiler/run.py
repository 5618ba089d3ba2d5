"""``profiler-run``: run a command with the profiler started inside every Python process it launches.

Shaped like ``ddtrace-run``: ``profiler-run [options] python app.py args...``.
Options set the matching ``DD_*`` variables; the bootstrap directory goes in
front of ``PYTHONPATH`` so its ``sitecustomize`` starts the profiler; then the
command replaces this process (``exec``), so its exit code and signals are its own.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from typing import Dict, List, Optional

BOOTSTRAP_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bootstrap")

COLLECTORS = ("stack", "lock", "memory", "heap", "exception")


def build_parser() -> argparse.ArgumentParser:
    """The launcher's command line: options first, then the command to run."""
    parser = argparse.ArgumentParser(
        prog="profiler-run",
        description="Run a Python program with the continuous profiler enabled.",
        epilog="Any DD_* variable already in the environment applies too; options win over it.",
    )
    parser.add_argument("--output", metavar="DIR", help="write profiles as pprof files into DIR (no agent upload)")
    parser.add_argument("--service", help="service name (DD_SERVICE)")
    parser.add_argument("--env", help="environment (DD_ENV)")
    parser.add_argument("--version", dest="app_version", help="application version (DD_VERSION)")
    parser.add_argument("--tags", help="extra tags k:v,k2:v2 (DD_PROFILING_TAGS)")
    parser.add_argument("--url", help="agent URL (DD_TRACE_AGENT_URL)")
    parser.add_argument(
        "--upload-interval", type=float, metavar="SECONDS", help="seconds between profiles (DD_PROFILING_UPLOAD_INTERVAL)"
    )
    parser.add_argument("--enable", action="append", default=[], choices=COLLECTORS, help="enable a collector")
    parser.add_argument("--disable", action="append", default=[], choices=COLLECTORS, help="disable a collector")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command to run, e.g. python app.py")
    return parser


def environment_for(args: argparse.Namespace, environ: Dict[str, str]) -> Dict[str, str]:
    """The environment the command runs with: ``environ`` plus what the options ask for."""
    env = dict(environ)
    env.setdefault("DD_PROFILING_ENABLED", "true")
    if args.output:
        os.makedirs(args.output, exist_ok=True)
        env["DD_PROFILING_OUTPUT_PPROF"] = os.path.join(os.path.abspath(args.output), "profile")
    simple = {
        "DD_SERVICE": args.service,
        "DD_ENV": args.env,
        "DD_VERSION": args.app_version,
        "DD_PROFILING_TAGS": args.tags,
        "DD_TRACE_AGENT_URL": args.url,
        "DD_PROFILING_UPLOAD_INTERVAL": None if args.upload_interval is None else repr(args.upload_interval),
    }
    for key, value in simple.items():
        if value is not None:
            env[key] = value
    for name in args.enable:
        env["DD_PROFILING_%s_ENABLED" % name.upper()] = "true"
    for name in args.disable:
        env["DD_PROFILING_%s_ENABLED" % name.upper()] = "false"
    pythonpath = env.get("PYTHONPATH", "")
    parts = [p for p in pythonpath.split(os.pathsep) if p and p != BOOTSTRAP_DIR]
    env["PYTHONPATH"] = os.pathsep.join([BOOTSTRAP_DIR] + parts)
    return env


def main(argv: Optional[List[str]] = None) -> int:
    """Parse the options and ``exec`` the command; returns only on error (127: command not found)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        parser.print_usage(sys.stderr)
        sys.stderr.write("profiler-run: no command given\n")
        return 2
    executable = shutil.which(command[0])
    if executable is None:
        sys.stderr.write("profiler-run: command not found: %s\n" % command[0])
        return 127
    env = environment_for(args, dict(os.environ))
    if args.output:
        env["PROFILER_RUN_PID"] = str(os.getpid())  # exec keeps the pid: the program announces its profiles
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(executable, command, env)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
