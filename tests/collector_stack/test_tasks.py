import asyncio
import threading

from profiler_core.recorder import Recorder
from profiler_stack._sampler import StackSampler
from profiler_stack.tasks import sample_tasks


async def wait_for_db(event):
    await event.wait()


async def handler(event):
    await wait_for_db(event)


async def sleeper():
    await asyncio.sleep(60)


def test_suspended_tasks_are_reported_where_they_await():
    recorder = Recorder()
    sampler = StackSampler(recorder.push, 64)
    sampler.task_hook = sample_tasks
    ready = threading.Event()
    done = threading.Event()
    loop_holder = {}

    def run_loop():
        async def main():
            asyncio.current_task().set_name("main")
            event = asyncio.Event()
            loop_holder["loop"] = asyncio.get_running_loop()
            loop_holder["event"] = event
            tasks = [asyncio.create_task(handler(event), name="request-%d" % i) for i in range(3)]
            tasks.append(asyncio.create_task(sleeper(), name="ticker"))
            await asyncio.sleep(0.01)
            loop = asyncio.get_running_loop()
            waiting = loop.run_in_executor(None, done.wait)
            # call_soon runs after this step returns, so every task, main included, is suspended
            loop.call_soon(ready.set)
            await waiting
            event.set()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run(main())

    t = threading.Thread(target=run_loop, name="event-loop")
    t.start()
    try:
        assert ready.wait(5)
        sampler.sample()
        sampler.sample()
    finally:
        done.set()
        t.join(5)
    samples = recorder.flush().samples
    by_task = {}
    for (stack, labels), values in samples.items():
        d = dict(labels)
        if "task name" in d:
            by_task.setdefault(d["task name"], []).append((stack, d, values))
    assert set(by_task) == {"main", "request-0", "request-1", "request-2", "ticker"}
    stack, labels, values = by_task["request-1"][0]
    names = [f.function for f in stack]
    # leaf first: Event.wait inside wait_for_db, awaited by handler
    assert names.index("wait_for_db") < names.index("handler")
    assert labels["thread name"] == "event-loop"
    assert isinstance(labels["task id"], int)
    assert values["wall-time"] > 0 and "cpu-time" not in values
    assert [f.function for f in by_task["ticker"][0][0]][-1] == "sleeper"


def test_no_asyncio_no_task_samples():
    pushes = []
    assert sample_tasks(lambda *a: pushes.append(a), 1, {}, 64) >= 0
