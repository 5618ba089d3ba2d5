import os

import pytest

FAKE_PLUGIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fake_plugin")


@pytest.fixture
def fake_plugin_path(monkeypatch):
    """Put the test-only fake collector plugin on sys.path (it registers by entry point)."""
    monkeypatch.syspath_prepend(FAKE_PLUGIN)
    return FAKE_PLUGIN

