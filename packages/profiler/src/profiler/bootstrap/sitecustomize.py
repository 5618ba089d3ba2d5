"""Started by ``profiler-run`` through PYTHONPATH: start the profiler, then run the user's own sitecustomize."""

import sys


def _start_and_chain() -> None:
    chain_sitecustomize = None
    try:
        from profiler._launch import chain_sitecustomize, start_from_environment
        from profiler_core.threads import own_work

        with own_work():  # the launcher's work in the program's thread: not the program's
            start_from_environment()
    except Exception as exc:  # the host must start even if the profiler cannot
        sys.stderr.write("profiler: not started: %r\n" % (exc,))
    try:
        if chain_sitecustomize is None:
            from profiler._launch import chain_sitecustomize

        chain_sitecustomize(__file__)
    except Exception as exc:
        sys.stderr.write("profiler: user sitecustomize failed: %r\n" % (exc,))
        raise


_start_and_chain()
