"""The parity tests' workload: a small multi-threaded service's mix, of fixed amounts of work.

CPU in one thread, sleeping in another, two threads contending for locks (Lock, Condition,
Semaphore, Queue), allocations of which some stay alive, raised and caught exceptions, and
asyncio tasks. Each part does a fixed amount (not "for N seconds"), so that a profiler that
slows the program down does not change what there is to count.
"""

import asyncio
import json
import queue
import threading
import time

lock = threading.Lock()
cond = threading.Condition()
sem = threading.Semaphore(1)
jobs = queue.Queue()
kept = []
truth = {}  # thread name -> [CPU seconds, wall seconds] it used: the ground truth printed at the end


def measured(f):
    def run():
        began = time.monotonic()
        f()
        truth[threading.current_thread().name] = [time.thread_time(), time.monotonic() - began]

    run.__name__ = f.__name__
    return run


def burn():
    for _ in range(6000):
        sum(range(2000))


def sleeper():
    for _ in range(150):
        time.sleep(0.01)


def locker():
    for _ in range(300):
        with lock:
            time.sleep(0.002)
        with cond:
            cond.notify_all()
        with sem:
            pass
        jobs.put(1)
        jobs.get()


def allocator():
    for i in range(30000):
        kept.append(bytes(4096))  # one block each: the live count is the number of objects
        if len(kept) > 3000:
            del kept[:1000]
        if i % 100 == 0:
            time.sleep(0.005)


RAISES = 20000  # sampled one in 100 by both: ~200 samples, a standard deviation of 7%


def raiser():
    for i in range(RAISES):
        try:
            {}["missing"]
        except KeyError:
            pass
        if i % 100 == 0:
            time.sleep(0.001)


async def task_work(n):
    for _ in range(300):
        sum(range(500 * n))
        await asyncio.sleep(0.002)


async def tasks_main():
    await asyncio.gather(*(asyncio.create_task(task_work(n), name="worker-%d" % n) for n in (1, 2)))


def event_loop():
    asyncio.run(tasks_main())


threads = [threading.Thread(target=measured(f), name=f.__name__) for f in (burn, sleeper, locker, locker, allocator, raiser, event_loop)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(json.dumps(truth))
