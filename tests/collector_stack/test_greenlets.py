"""Greenlet tracking for the stack collector (gevent's greenlets; here plain greenlets, no patching)."""

import pytest

greenlet = pytest.importorskip("greenlet")

from profiler_core.events import TASK_ID, TASK_NAME  # noqa: E402
from profiler_stack.greenlets import GreenletTracker  # noqa: E402
from profiler_core.threads import get_ident  # noqa: E402


def parked(main):
    def waits_here():
        main.switch()

    waits_here()


def test_suspended_greenlets_are_sampled_with_task_labels_and_the_user_hook_still_runs():
    seen_by_user = []
    previous = greenlet.settrace(lambda event, args: seen_by_user.append(event))
    tracker = GreenletTracker()
    try:
        tracker.start()
        main = greenlet.getcurrent()
        glets = [greenlet.greenlet(parked) for _ in range(3)]
        for g in glets:
            g.switch(main)  # runs until waits_here() switches back: suspended there
        assert seen_by_user  # the hook that was set before is called on
        assert tracker.running[get_ident()] == ((TASK_ID, id(main)), (TASK_NAME, "greenlet"))
        pushes = []
        thread_labels = {get_ident(): (("thread name", "MainThread"),)}
        assert tracker.sample(lambda *a: pushes.append(a), 1000, thread_labels, 64) == 3
        for stack, labels, values in pushes:
            assert [f.function for f in stack[:2]] in (["parked.<locals>.waits_here", "parked"], ["waits_here", "parked"])  # 3.10: no qualname
            assert labels[0] == ("thread name", "MainThread") and dict(labels)[TASK_ID] in {id(g) for g in glets}
            assert values == {"wall-time": 1000, "wall-samples": 1}
        for g in glets:
            g.switch()  # let them end
        assert tracker.sample(lambda *a: pushes.append(a), 1000, thread_labels, 64) == 0
        del glets, g
        assert len(tracker.tracked) <= 1  # ended greenlets are forgotten (only main may stay)
    finally:
        tracker.stop()
        restored = greenlet.gettrace()
        greenlet.settrace(previous)
    assert restored is not None and restored != tracker._trace  # the user's hook is back


def test_a_greenlet_switched_to_is_labelled_as_running():
    tracker = GreenletTracker()
    tracker.start()
    try:
        seen = []

        def body():
            seen.append(tracker.running[get_ident()])

        g = greenlet.greenlet(body)
        g.switch()
        assert seen == [((TASK_ID, id(g)), (TASK_NAME, "greenlet"))]
    finally:
        tracker.stop()
