"""gunicorn under profiler-run: sync, --preload, gthread, --max-requests, gevent workers."""

import pytest

import os

from harness import HERE, free_port, run_server, tool


def gunicorn(port, *args):
    return [tool("gunicorn"), "--bind", "127.0.0.1:%d" % port, "--workers", "2", "--graceful-timeout", "5",
            "--config", os.path.join(HERE, "gunicorn_ready.py"), *args, "apps:application"]


def run_gunicorn(tmp_path, port, *args):
    """Run gunicorn with ``args``; SIGTERM once every worker has its signal handlers (see
    gunicorn_ready.py: a worker booting 1 s late on a loaded machine missed it and was killed)."""
    ready = tmp_path / "ready"
    ready.mkdir()

    def workers_ready(pids):
        workers = pids[1:]  # pids[0] is the arbiter
        return len(workers) >= 2 and all((ready / str(pid)).exists() for pid in workers)

    return run_server(tmp_path, gunicorn(port, *args), port, env_extra={"READY_DIR": str(ready)},
                      ready_before_signal=workers_ready)


@pytest.mark.parametrize(
    "args",
    [
        pytest.param((), id="sync"),
        pytest.param(("--preload",), id="preload"),
        pytest.param(("--worker-class", "gthread", "--threads", "4"), id="gthread"),
        pytest.param(("--max-requests", "8"), id="max-requests"),
    ],
)
def test_gunicorn(tmp_path, args):
    port = free_port()
    run = run_gunicorn(tmp_path, port, *args)
    # Every worker that answered a few requests shows the handler, including fresh workers
    # (--max-requests restarts them every 8 requests) and gthread workers, which answer in pool
    # threads started by the first requests: frames are named from what the capture copied, new
    # threads are captured from the next interval on, and a fresh process's first costly batches
    # no longer stretch the sampling interval (each of these left workers without the handler
    # under a loaded run before).
    run.check(handler_in_every_answering_worker=True)
    assert run.returncode == 0, run.stderr[-3000:]


def test_gunicorn_gevent_workers(tmp_path):
    port = free_port()
    run = run_gunicorn(tmp_path, port, "--worker-class", "gevent")
    # A gevent worker answers its requests in greenlets of one thread, often all within a few
    # samples on a loaded machine: the handler must be in the workers' profiles taken together
    # (tests/profiler/test_gunicorn_gevent.py checks each worker with a longer load).
    run.check(handler_in_every_answering_worker=False)
    assert any(run.handler_time(pid) > 0 for pid in run.answered_by), run.stderr[-3000:]
    assert run.returncode == 0, run.stderr[-3000:]
