"""What a hung child process was doing, for the message of the test that waited on it.

A test that times out waiting on a process it started calls :func:`hang_report` before killing it:
the report lists the process and its descendants (state, kernel wait channel, threads), their
native stacks when gdb is on the machine, and their Python stacks through faulthandler, which the
children have enabled when they were started with :func:`with_faulthandler`'s environment.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

#: At most this many processes get a native stack dump (gdb takes a second or two each).
MAX_GDB = 4


def with_faulthandler(env: dict) -> dict:
    """``env`` with Python's faulthandler on, so that SIGABRT prints every thread's Python stack."""
    return dict(env, PYTHONFAULTHANDLER="1")


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return "?"


def _tree(root: int) -> "list[int]":
    children: dict = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _read("/proc/%s/stat" % entry)
            if ")" in stat:
                children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry))
    found, todo = [root], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _describe(pid: int) -> str:
    stat = _read("/proc/%d/stat" % pid)
    state = stat.rsplit(")", 1)[1].split()[0] if ")" in stat else "gone"
    lines = ["pid %d state %s cmd %s" % (pid, state, _read("/proc/%d/cmdline" % pid).replace("\0", " ")[:200])]
    try:
        tids = sorted(int(t) for t in os.listdir("/proc/%d/task" % pid))
    except OSError:
        tids = []
    for tid in tids:
        base = "/proc/%d/task/%d/" % (pid, tid)
        tstat = _read(base + "stat")
        tstate = tstat.rsplit(")", 1)[1].split()[0] if ")" in tstat else "?"
        lines.append("  thread %d %s state %s wchan %s" % (tid, _read(base + "comm"), tstate, _read(base + "wchan")))
    return "\n".join(lines)


def _gdb_stacks(pid: int) -> str:
    gdb = shutil.which("gdb")
    if gdb is None:
        return "(no gdb here: no native stacks)"
    try:
        out = subprocess.run([gdb, "-batch", "-nx", "-p", str(pid), "-ex", "thread apply all bt 30"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as e:
        return "(gdb failed: %s)" % e
    return "\n".join(line[:160] for line in out.stdout.splitlines() if line.startswith(("#", "Thread")))


def hang_report(roots: "int | list[int]", abort: bool = True) -> str:
    """A text describing the processes ``roots`` and their descendants as they are now; with
    ``abort``, then sends them SIGABRT (faulthandler, when on, prints their Python stacks to their
    stderr, which the caller reads after this returns). The processes are left for the caller to kill."""
    pids: "list[int]" = []
    for root in [roots] if isinstance(roots, int) else roots:
        pids += [p for p in _tree(root) if p not in pids and os.path.exists("/proc/%d" % p)]
    parts = ["hang report: %d process(es)" % len(pids)]
    for i, pid in enumerate(pids):
        parts.append(_describe(pid))
        if i < MAX_GDB:
            parts.append(_gdb_stacks(pid))
    if abort:
        for pid in reversed(pids):
            try:
                os.kill(pid, signal.SIGABRT)
            except OSError:
                pass
        time.sleep(1.0)  # faulthandler writes at once; give the pipes a moment
    return "\n".join(parts)
