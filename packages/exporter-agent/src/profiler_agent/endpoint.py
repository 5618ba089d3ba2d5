"""Where profiles go: the agent (HTTP, HTTPS or a unix socket) or, agentless, the intake."""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Dict, Optional

    from profiler_core.config import ProfilerConfig

AGENT_PATH = "/profiling/v1/input"
DEFAULT_SOCKET = "/var/run/datadog/apm.socket"
DEFAULT_URL = "http://localhost:8126"


class Endpoint:
    """An upload destination.

    ``url`` is what requests is asked for (for a unix socket, ``http://localhost``
    plus the path, with ``unix_socket`` set); ``headers`` are added to every
    upload (the API key when agentless); ``display`` is safe to log.
    """

    __slots__ = ("url", "unix_socket", "headers", "agentless", "display")

    def __init__(
        self, url: str, unix_socket: "Optional[str]" = None, headers: "Optional[Dict[str, str]]" = None, agentless: bool = False
    ) -> None:
        self.url = url
        self.unix_socket = unix_socket
        self.headers = dict(headers or {})
        self.agentless = agentless
        self.display = ("unix://%s%s" % (unix_socket, AGENT_PATH)) if unix_socket else url

    def __repr__(self) -> str:
        return "Endpoint(%s%s)" % (self.display, ", agentless" if self.agentless else "")


def agent_base(config: "ProfilerConfig", exists: "Callable[[str], bool]" = os.path.exists) -> str:
    """The agent's base URL, by precedence: configured URL, host/port, default socket, localhost:8126."""
    if config.agent_url:
        return config.agent_url.rstrip("/")
    if config.agent_host:
        host = config.agent_host
        if ":" in host and not host.startswith("["):
            host = "[%s]" % host  # IPv6 literal
        return "http://%s:%d" % (host, config.agent_port)
    if exists(DEFAULT_SOCKET):
        return "unix://" + DEFAULT_SOCKET
    return DEFAULT_URL


def resolve(config: "ProfilerConfig", exists: "Callable[[str], bool]" = os.path.exists) -> Endpoint:
    """The endpoint ``config`` asks for; raises ValueError for an unusable agent URL."""
    if config.agentless:
        if not config.api_key:
            raise ValueError("agentless profiling needs DD_API_KEY")
        return Endpoint(
            "https://intake.profile.%s/api/v2/profile" % config.site, headers={"DD-API-KEY": config.api_key}, agentless=True
        )
    base = agent_base(config, exists)
    if base.startswith("unix://"):
        path = base[len("unix://") :]
        if not path.startswith("/"):
            raise ValueError("unix socket agent URL needs an absolute path: %r" % base)
        return Endpoint("http://localhost" + AGENT_PATH, unix_socket=path)
    if not base.startswith(("http://", "https://")):
        raise ValueError("unsupported agent URL %r (http://, https:// or unix://)" % base)
    return Endpoint(base + AGENT_PATH)
