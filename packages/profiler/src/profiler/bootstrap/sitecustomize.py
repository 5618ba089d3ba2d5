"""Started by ``profiler-run`` through PYTHONPATH: start the profiler, then run the user's own sitecustomize."""

import sys


def _start_and_chain() -> None:
    try:
        from profiler._launch import start_from_environment

        start_from_environment()
    except Exception as exc:  # the host must start even if the profiler cannot
        sys.stderr.write("profiler: not started: %r\n" % (exc,))
    try:
        from profiler._launch import chain_sitecustomize

        chain_sitecustomize(__file__)
    except Exception as exc:
        sys.stderr.write("profiler: user sitecustomize failed: %r\n" % (exc,))
        raise


_start_and_chain()
