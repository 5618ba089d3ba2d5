"""N asyncio tasks waiting on an event while nothing else runs: ``idle_tasks.py N SECONDS``.

Prints the CPU seconds the whole process used over the SECONDS window (after the tasks exist):
the program itself is idle, so under a profiler that is what profiling N tasks costs.
"""

import asyncio
import sys
import time


async def wait_deep(event, depth):
    if depth:
        return await wait_deep(event, depth - 1)
    await event.wait()


async def main(n, seconds):
    event = asyncio.Event()
    tasks = [asyncio.create_task(wait_deep(event, 5), name="waiter-%d" % i) for i in range(n)]
    await asyncio.sleep(0.5)  # every task started and waiting; the profiler has seen them
    cpu, wall = time.process_time(), time.monotonic()
    await asyncio.sleep(seconds)
    cpu, wall = time.process_time() - cpu, time.monotonic() - wall
    event.set()
    await asyncio.gather(*tasks)
    print(cpu / wall)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), float(sys.argv[2])))
