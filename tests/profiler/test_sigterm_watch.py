"""The SIGTERM watcher (profiler.sigterm_watch): unseen by the program, right across fork, and
CPython's own signal tests pass with it as without."""

import os
import subprocess
import sys
import textwrap

import pytest

PROGRAM = textwrap.dedent(
    """
    import os, signal, sys, time
    import profiler
    from profiler import sigterm_watch
    profiler.Profiler(output_pprof=sys.argv[1]).start()
    assert sigterm_watch._pipe is not None, "watching"
    parent_pipe = os.fstat(sigterm_watch._pipe[1]).st_ino
    pid = os.fork()
    if pid == 0:
        # a pipe of its own: the parent's watcher does not hear this child's signals
        print("child's own pipe", os.fstat(sigterm_watch._pipe[1]).st_ino != parent_pipe, flush=True)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(10)
        os._exit(1)
    _, status = os.waitpid(pid, 0)
    print("child died by SIGTERM", os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGTERM, flush=True)
    time.sleep(0.6)  # the parent's watcher would have acted by now (it nudges after 0.1 s)
    print("parent alive")
    print("seen", signal.set_wakeup_fd(-1))  # -1, as without the profiler
    r, w = os.pipe()
    os.set_blocking(w, False)
    print("program's", signal.set_wakeup_fd(w) == -1, signal.set_wakeup_fd(-1) == w)
    """
)


def test_the_watcher_is_unseen_and_per_process(tmp_path):
    script = tmp_path / "app.py"
    script.write_text(PROGRAM)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DD_")}
    proc = subprocess.run([sys.executable, str(script), str(tmp_path / "p")], capture_output=True, text=True,
                          timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "child's own pipe True", "child died by SIGTERM True", "parent alive", "seen -1", "program's True True",
    ], proc.stdout + proc.stderr


LATE_IMPORT = textwrap.dedent(
    """
    import os, sys
    import profiler
    from profiler import sigterm_watch
    p = profiler.Profiler(output_pprof=sys.argv[1])
    p.start()
    assert sigterm_watch._pipe is not None, "watching"
    print("signal imported by the profiler", "signal" in sys.modules)
    import signal  # after the start: takes set_wakeup_fd from _signal
    print("seen", signal.set_wakeup_fd(-1))  # -1, as without the profiler
    r, w = os.pipe()
    os.set_blocking(w, False)
    print("program's", signal.set_wakeup_fd(w) == -1, signal.set_wakeup_fd(-1) == w)
    p.stop()
    import _signal
    print("given back", signal.set_wakeup_fd is _signal.set_wakeup_fd and type(signal.set_wakeup_fd).__name__)
    p2 = profiler.Profiler(output_pprof=sys.argv[1])
    p2.start()
    mine = lambda fd, **kw: -7
    signal.set_wakeup_fd = mine  # the program's own patch (a test's mock) is left alone at stop
    p2.stop()
    print("program's patch kept", signal.set_wakeup_fd is mine)
    """
)


def test_signal_imported_after_the_start_sees_no_watcher_and_gets_the_original_back(tmp_path):
    script = tmp_path / "app.py"
    script.write_text(LATE_IMPORT)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DD_")}
    proc = subprocess.run([sys.executable, str(script), str(tmp_path / "p")], capture_output=True, text=True,
                          timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "signal imported by the profiler False", "seen -1", "program's True True",
        "given back builtin_function_or_method", "program's patch kept True",
    ], proc.stdout + proc.stderr


def _cpython_signal_tests(with_profiler: bool) -> str:
    script = textwrap.dedent(
        """
        import sys, unittest
        if %r:
            import profiler
            from profiler import sigterm_watch
            profiler.Profiler(output_pprof=sys.argv[1]).start()
            assert sigterm_watch._pipe is not None
        result = unittest.main(module=None, argv=["x", "test.test_signal", "-k", "Wakeup", "-k", "Generic",
                               "-k", "Signal"], exit=False, verbosity=0).result
        print("RESULT", result.testsRun, len(result.skipped), sorted(str(t) for t, _ in result.failures + result.errors))
        """
        % with_profiler
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("DD_")}
    proc = subprocess.run([sys.executable, "-c", script, os.devnull + ".pprof"], capture_output=True, text=True,
                          timeout=300, env=env)
    return proc.stdout


def test_cpython_signal_tests_pass_as_without_the_profiler():
    pytest.importorskip("test.test_signal", reason="this interpreter has no 'test' package")
    without = [l for l in _cpython_signal_tests(False).splitlines() if l.startswith("RESULT")]
    with_profiler = [l for l in _cpython_signal_tests(True).splitlines() if l.startswith("RESULT")]
    assert without and with_profiler == without
