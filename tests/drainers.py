"""Running work in threads while other threads drain a collector, as a flush beside a stop does."""

import threading


def run_beside_drainers(work, drain, workers: int = 4, drainers: int = 2) -> None:
    """Run ``work()`` in ``workers`` threads while ``drainers`` threads call ``drain()`` over and
    over; returns once the work is done and the drainers have stopped."""
    stop = threading.Event()

    def keep_draining():
        while not stop.is_set():
            drain()

    draining = [threading.Thread(target=keep_draining) for _ in range(drainers)]
    working = [threading.Thread(target=work) for _ in range(workers)]
    for t in draining + working:
        t.start()
    for t in working:
        t.join()
    stop.set()
    for t in draining:
        t.join()
