import pytest

from agent_server import FakeAgent


@pytest.fixture
def agent():
    server = FakeAgent()
    yield server
    server.close()
