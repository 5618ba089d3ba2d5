"""An asyncio service's shape: producers and consumers around an ``asyncio.Queue``, an
``asyncio.Lock`` guarding shared state, and 2,000 idle tasks (connections waiting for input)
alongside; prints seconds of work.

``python asyncio_service.py [items]``: 8 producers put ``items`` work items in all, 8 consumers
take them, each item parsed (a small dict and list built and read) and recorded under the lock,
with an occasional ``await asyncio.sleep(0)`` as a handler awaiting I/O would.
"""

import asyncio
import sys
import time

PRODUCERS = 8
CONSUMERS = 8
IDLE_TASKS = 2000


async def idle(forever):
    await forever.wait()


async def produce(queue, first, count):
    for i in range(first, first + count):
        await queue.put({"id": i, "path": "/item/%d" % i, "tags": ["a", "b", str(i % 7)]})


def handle(item):
    parts = item["path"].split("/")
    return len(parts[-1]) + sum(len(tag) for tag in item["tags"]) + item["id"] % 13


async def consume(queue, lock, totals):
    while True:
        item = await queue.get()
        if item is None:
            queue.task_done()
            return
        value = handle(item)
        if item["id"] % 16 == 0:
            await asyncio.sleep(0)
        async with lock:
            totals[item["id"] % 64] = totals.get(item["id"] % 64, 0) + value
        queue.task_done()


async def serve(items):
    forever = asyncio.Event()
    idlers = [asyncio.create_task(idle(forever)) for _ in range(IDLE_TASKS)]
    await asyncio.sleep(0)
    queue = asyncio.Queue(maxsize=256)
    lock = asyncio.Lock()
    totals = {}
    start = time.perf_counter()
    consumers = [asyncio.create_task(consume(queue, lock, totals)) for _ in range(CONSUMERS)]
    share = items // PRODUCERS
    await asyncio.gather(*(produce(queue, p * share, share) for p in range(PRODUCERS)))
    for _ in consumers:
        await queue.put(None)
    await asyncio.gather(*consumers)
    elapsed = time.perf_counter() - start
    forever.set()
    await asyncio.gather(*idlers)
    return elapsed


def main():
    items = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    print("%.6f" % asyncio.run(serve(items)))


if __name__ == "__main__":
    main()
