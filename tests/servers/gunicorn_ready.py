"""gunicorn settings for the tests: each worker says when it is ready (``-c`` this file).

gunicorn logs "Booting worker" right after the fork and installs the worker's signal handlers only
in ``init_process``: a SIGTERM that reaches a worker before that is taken by the handler inherited
from the arbiter, which only queues it, so the worker serves on until the graceful timeout's
SIGKILL, with or without a profiler. The tests send SIGTERM once every worker is past that point."""

import os


def post_worker_init(worker):
    """Leave ``$READY_DIR/<pid>``: this worker's handlers are installed and its app loaded."""
    folder = os.environ.get("READY_DIR")
    if folder:
        open(os.path.join(folder, str(os.getpid())), "w").close()
