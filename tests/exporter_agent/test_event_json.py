"""The event's JSON writer writes what json.dumps writes, for every value an event can hold."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings, strategies as st

from profiler_agent.event_json import dumps

values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(values)
def test_same_text_as_json_dumps(value):
    assert dumps(value) == json.dumps(value)


def test_an_event_as_the_exporter_builds_it():
    event = {"attachments": ["profile.pprof"], "tags_profiler": "service:a\u00e9,env:\"x\"", "endpoint_counts": {"GET /burn": 33},
             "info": {"profiler": {"settings": {"interval": 60.0, "max_frames": 64, "enabled": True, "x": None}}},
             "span": ("a", 1)}
    assert dumps(event) == json.dumps(event)


@pytest.mark.parametrize("value", [{1: "a"}, {"a": object()}, b"bytes", {1.5}])
def test_what_an_event_never_holds_is_refused(value):
    # (json.dumps would turn the int key into a string; an event has none, so it is refused here.)
    with pytest.raises(TypeError):
        dumps(value)
