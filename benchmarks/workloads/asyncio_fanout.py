"""An asyncio fan-out: batches of 500 tasks that await and compute; prints seconds of work."""

import asyncio
import sys
import time


async def handle(i):
    await asyncio.sleep(0.001)
    return sum(range(i % 200))


async def main_async(batches):
    for _ in range(batches):
        await asyncio.gather(*(handle(i) for i in range(500)))


def main():
    batches = int(sys.argv[1]) if len(sys.argv) > 1 else 40
    start = time.perf_counter()
    asyncio.run(main_async(batches))
    print("%.6f" % (time.perf_counter() - start))


if __name__ == "__main__":
    main()
