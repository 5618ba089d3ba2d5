"""uvicorn under profiler-run, single process and --workers 2 (spawned workers).

uvicorn re-raises SIGTERM after its graceful shutdown: the process dies by SIGTERM, with or
without the profiler, and its last profile must be written first.
"""

import signal

import pytest

from harness import free_port, run_server, tool


@pytest.mark.parametrize("workers", [1, 2], ids=["single", "workers-2"])
def test_uvicorn(tmp_path, workers):
    port = free_port()
    command = [tool("uvicorn"), "--host", "127.0.0.1", "--port", str(port), "--no-access-log",
               "--timeout-graceful-shutdown", "5", "apps:asgi_app"]
    if workers > 1:
        command[1:1] = ["--workers", str(workers)]
    run = run_server(tmp_path, command, port)
    run.check()
    assert run.returncode in (0, -signal.SIGTERM), run.stderr[-3000:]
