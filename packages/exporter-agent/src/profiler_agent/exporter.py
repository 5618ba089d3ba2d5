"""The agent exporter: profiles queue up and a daemon thread uploads them, with retries."""

from __future__ import annotations

import _thread
import random
import threading
import time
import uuid
from collections import deque

from profiler_core._log import get_logger
from profiler_core.interfaces import Exporter

from profiler_agent import __version__
from profiler_agent.container import read_container_id
from profiler_agent.endpoint import resolve
from profiler_agent.payload import build_files, pick_codec, runtime_tags

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Deque, Dict, Optional

    from profiler_core.config import ProfilerConfig
    from profiler_core.interfaces import ExportedProfile

    from profiler_agent.endpoint import Endpoint

LOG = get_logger("profiler_agent")

THREAD_NAME = "profiler-uploader"
ORIGIN = "profiler-python"
USER_AGENT = "profiler-python/%s" % __version__
MAX_PENDING = 8
LOG_EVERY = 60.0  # seconds between two log lines about the same problem

_CLIENT_ERRORS = {
    400: "the agent or intake rejected the profile as malformed (400 Bad Request): check DD_API_KEY",
    401: "the intake refused the API key (401): check DD_API_KEY",
    403: "the intake refused the upload (403 Forbidden): check DD_API_KEY and DD_SITE",
    404: "the agent has no profiling endpoint (404): the agent is too old or profiling is disabled in it",
    413: "the profile is too large for the agent (413): lower DD_PROFILING_MAX_FRAMES or DD_PROFILING_UPLOAD_INTERVAL",
}


class _Transient(Exception):
    """An upload failure worth retrying: no connection, timeout, 5xx, 429."""


class _Rejected(Exception):
    """An upload failure not worth retrying: the agent said no (4xx)."""


class AgentExporter(Exporter):
    """Uploads each profile to the agent (or intake) as ddtrace does, from a daemon thread.

    ``export`` only queues: the application's threads never wait on the network.
    At most ``max_pending`` profiles wait while the agent is unreachable; a newer
    one pushes the oldest out, counted in ``dropped``. Connection errors,
    timeouts, 429 and 5xx are retried with exponential backoff and jitter for at
    most one upload interval; 4xx are logged with their likely cause and the
    profile is dropped. ``stop`` tries what is pending once more, within its timeout.
    """

    name = "agent"

    def __init__(
        self,
        config: "ProfilerConfig",
        max_pending: int = MAX_PENDING,
        endpoint: "Optional[Endpoint]" = None,
        retry_base: float = 0.5,
    ) -> None:
        super().__init__(config)
        self.endpoint = endpoint or resolve(config)
        self.max_pending = max(1, max_pending)
        self.retry_base = retry_base
        self.codec = pick_codec(config.upload_compression)
        self.container_id = read_container_id()
        self.sent = 0
        self.dropped = 0
        self.rejected = 0
        self._init_state()

    def _init_state(self) -> None:
        self._cond = threading.Condition(_thread.allocate_lock())
        self._pending: "Deque[ExportedProfile]" = deque()
        self._in_flight = 0
        self._thread: "Optional[threading.Thread]" = None
        self._stopping = False
        self._closed = False
        self._session = None
        self._last_logged: "Dict[str, float]" = {}
        self.runtime_id = str(uuid.uuid4())

    @classmethod
    def is_enabled(cls, config: "ProfilerConfig") -> bool:
        """The default destination, unless profiles go to files (``DD_PROFILING_OUTPUT_PPROF``), as in ddtrace."""
        return not config.output_pprof

    # -- the application side ---------------------------------------------------------

    def export(self, profile: "ExportedProfile") -> None:
        """Queue ``profile`` for upload; never blocks on the network."""
        with self._cond:
            if self._closed:
                return
            self._pending.append(profile)
            while len(self._pending) > self.max_pending:
                self._pending.popleft()
                self.dropped += 1
                self._log_limited("drop", "profiler: agent unreachable or slow: dropped the oldest waiting profile (%d dropped so far)", self.dropped)
            self._cond.notify_all()
            if self._thread is None or not self._thread.is_alive():
                thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)
                try:
                    thread.start()
                except RuntimeError:
                    # CPython 3.12 starts no thread once the interpreter is finalizing, atexit
                    # callbacks included: the profile stays queued and stop() uploads it inline.
                    return
                self._thread = thread

    def stop(self, timeout: float) -> None:
        """Upload what is pending, one attempt each, within ``timeout`` seconds; then stop the thread.

        Without a running uploader thread (none could be started at interpreter shutdown), the
        calling thread makes the attempts itself, each within what is left of ``timeout``.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
            while (self._pending or self._in_flight) and self._thread is not None and self._thread.is_alive():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            inline = []
            if self._thread is None or not self._thread.is_alive():
                inline = list(self._pending)
                self._pending.clear()
        undelivered = [p for p in inline if not self._deliver_before(p, deadline)]
        with self._cond:
            self._pending.extendleft(reversed(undelivered))
            if self._pending:
                self.dropped += len(self._pending)
                LOG.warning("profiler: %d profile(s) not uploaded before exit", len(self._pending))
                self._pending.clear()
            self._closed = True
            self._cond.notify_all()

    def after_fork_in_child(self) -> None:
        """The child uploads its own profiles only, with a runtime id of its own."""
        self._init_state()

    # -- the uploader thread ------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    if self._stopping:
                        self._cond.notify_all()
                    self._cond.wait()
                if self._closed:
                    return
                profile = self._pending.popleft()
                self._in_flight = 1
                stopping = self._stopping
            delivered = self._attempt(profile, retry=not stopping)
            with self._cond:
                self._in_flight = 0
                if not delivered and not self._closed:
                    if len(self._pending) < self.max_pending:
                        self._pending.appendleft(profile)  # keep it for the next attempt, in order
                    else:
                        self.dropped += 1
                    if not self._stopping:
                        self._cond.wait(self.config.upload_interval)  # wait for news before trying again
                self._cond.notify_all()

    def _deliver_before(self, profile: "ExportedProfile", deadline: float) -> bool:
        """One upload attempt of ``profile`` from the calling thread, given up at ``deadline``."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        return self._attempt(profile, retry=False, timeout=min(self.config.api_timeout, remaining))

    def _attempt(self, profile: "ExportedProfile", retry: bool, timeout: "Optional[float]" = None) -> bool:
        """``_deliver``, where a bug is logged and the profile counted as done (never retried, never raised)."""
        try:
            return self._deliver(profile, retry, timeout)
        except Exception:
            LOG.exception("profiler: upload failed unexpectedly")
            return True

    def _deliver(self, profile: "ExportedProfile", retry: bool, timeout: "Optional[float]" = None) -> bool:
        """Upload ``profile``: True when done with it (sent or rejected), False to keep it for later."""
        deadline = time.monotonic() + min(self.config.upload_interval, 60.0)
        delay = self.retry_base
        while True:
            try:
                self._post(profile, timeout)
                self.sent += 1
                return True
            except _Rejected as exc:
                self.rejected += 1
                self._log_limited("status-%s" % exc.args[0], "profiler: %s (upload to %s)", exc.args[1], self.endpoint.display)
                return True
            except _Transient as exc:
                self._log_limited("transient", "profiler: cannot upload to %s: %s; will retry", self.endpoint.display, exc)
            pause = random.uniform(0, delay)
            if not retry or time.monotonic() + pause > deadline:
                return False
            with self._cond:
                if self._stopping or self._closed:
                    return False
                self._cond.wait(pause)
            delay = min(delay * 2, 10.0)

    def _post(self, profile: "ExportedProfile", timeout: "Optional[float]" = None) -> None:
        import requests

        if self._session is None:
            from profiler_agent.transport import make_session

            self._session = make_session(self.endpoint.unix_socket, self.config.api_timeout)
        tags = dict(profile.tags)
        tags.update(runtime_tags(self.runtime_id, __version__))
        headers = {
            "DD-EVP-ORIGIN": ORIGIN,
            "DD-EVP-ORIGIN-VERSION": __version__,
            "User-Agent": USER_AGENT,
        }
        if self.container_id:
            headers["Datadog-Container-ID"] = self.container_id
        headers.update(self.endpoint.headers)
        try:
            response = self._session.post(
                self.endpoint.url,
                files=build_files(profile, tags, self.codec),
                headers=headers,
                timeout=self.config.api_timeout if timeout is None else timeout,
            )
        except requests.RequestException as exc:
            raise _Transient(type(exc).__name__ + (": %s" % exc if str(exc) else "")) from None
        status = response.status_code
        response.close()
        if status < 300:
            return
        if status == 429 or status >= 500:
            raise _Transient("HTTP %d" % status)
        raise _Rejected(status, _CLIENT_ERRORS.get(status, "the agent refused the profile (HTTP %d)" % status))

    def _log_limited(self, key: str, message: str, *args: object) -> None:
        now = time.monotonic()
        last = self._last_logged.get(key)
        if last is None or now - last >= LOG_EVERY:
            self._last_logged[key] = now
            LOG.warning(message, *args)
