from profiler_core.events import Frame, Sample, omitted_frames_marker, truncate_stack


def stack(n):
    return tuple(Frame("f.py", "f%d" % i, i) for i in range(n))


def test_truncate_keeps_innermost_frames_and_marks_the_rest():
    out = truncate_stack(stack(10), 4)
    assert len(out) == 4
    assert [f.function for f in out[:3]] == ["f0", "f1", "f2"]
    assert out[3] == omitted_frames_marker(7)
    assert out[3].function == "<7 frames omitted>"


def test_truncate_is_idempotent_and_leaves_short_stacks_alone():
    s = stack(3)
    assert truncate_stack(s, 3) is s
    once = truncate_stack(stack(10), 4)
    assert truncate_stack(once, 4) == once


def test_sample_labels_tuple_orders_thread_and_task_labels_first():
    sample = Sample(
        stack=stack(1),
        values={"wall-time": 1},
        thread_id=5,
        thread_native_id=6,
        thread_name="main",
        task_id=7,
        task_name="t",
        labels=(("span id", 9),),
    )
    assert sample.labels_tuple() == (
        ("thread id", 5),
        ("thread native id", 6),
        ("thread name", "main"),
        ("task id", 7),
        ("task name", "t"),
        ("span id", 9),
    )


def test_one_omitted_frame_is_singular():
    from profiler_core.events import omitted_frames_marker

    assert omitted_frames_marker(1).function == "<1 frame omitted>"
    assert omitted_frames_marker(2).function == "<2 frames omitted>"
