"""The agent exporter: profiles queue up and a daemon thread uploads them, with retries."""

from __future__ import annotations

import _random
import os
import time
from collections import deque

from profiler_core import trace_context
from profiler_core._log import RateLimit, get_logger
from profiler_core.interfaces import Exporter
from profiler_core.threads import Condition, ProfilerThread
from profiler_core.isolation import leave_signals_to_the_program

from profiler_agent import __version__
from profiler_agent.container import read_entity_headers
from profiler_agent.endpoint import resolve

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
MAX_BACKOFF = 10.0  # seconds: the longest pause between two attempts while the agent fails

SENT, REJECTED, FAILED, UNREACHABLE = "sent", "rejected", "failed", "unreachable"

_CLIENT_ERRORS = {
    400: "the agent or intake rejected the profile as malformed (400 Bad Request): check DD_API_KEY",
    401: "the intake refused the API key (401): check DD_API_KEY",
    403: "the intake refused the upload (403 Forbidden): check DD_API_KEY and DD_SITE",
    404: "the agent has no profiling endpoint (404): the agent is too old or profiling is disabled in it",
    413: "the profile is too large for the agent (413): lower DD_PROFILING_MAX_FRAMES or DD_PROFILING_UPLOAD_INTERVAL",
}


def uuid4_hex() -> str:
    """A random (version 4) UUID as 32 hex digits, as ``uuid.uuid4().hex`` (the uuid module and the
    platform module it imports cost milliseconds at every start)."""
    b = bytearray(os.urandom(16))
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    return b.hex()


_uniform = _random.Random().random  # random.random without the random module (milliseconds to import)


class _Transient(Exception):
    """An upload failure worth retrying: timeout, 5xx, 429."""


class _Unreachable(_Transient):
    """No connection could be made: refused, unresolvable host, missing unix socket, connect timeout."""


class _Rejected(Exception):
    """An upload failure not worth retrying: the agent said no (4xx), or answered with a redirect."""


class AgentExporter(Exporter):
    """Uploads each profile to the agent (or intake) as ddtrace does, from a daemon thread.

    ``export`` only queues: the application's threads never wait on the network.
    At most ``max_pending`` profiles wait while the agent is unreachable; a newer
    one pushes the oldest out, counted in ``dropped``. Connection errors,
    timeouts, 429 and 5xx are retried with exponential backoff (``retry_base``
    doubling up to 10 s, each pause at least half of it): no upload is ever tried
    again sooner. 4xx are logged with their likely cause and the profile is
    dropped. Redirects are never followed (the API key would go along to wherever
    they point): the profile is dropped with one line. ``stop`` gives what is
    pending one attempt each, within its timeout, retried only as the backoff
    allows before that deadline, and not at all once the agent was found
    unreachable: a program whose agent is down exits at once.
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
        self.retry_base = max(retry_base, 0.001)
        # The payload's modules and the HTTP client (ssl for https) are imported on the thread that
        # builds the exporter, not with this module (which every profiled process imports, files or
        # agent) nor in the uploader thread: a fork during an import there would leave the child's
        # import lock held.
        from profiler_agent import httpclient, payload

        self._payload = payload
        self._http = httpclient
        self.codec = payload.pick_codec(config.upload_compression)
        if config.upload_compression == "zstd" and self.codec != "zstd":
            LOG.warning(
                "profiler: DD_PROFILING_UPLOAD_COMPRESSION=%r needs the zstandard package; using %r instead",
                config.upload_compression,
                self.codec,
            )
        self.container_headers = read_entity_headers()
        self.sent = 0
        self.dropped = 0
        self.rejected = 0
        self.failed_attempts = 0
        self.redirects_refused = 0
        self._init_state()
        LOG.debug("profiler: uploading to %r", self.endpoint)
        self._target = httpclient.Target(self.endpoint.url, self.endpoint.unix_socket)

    def _init_state(self) -> None:
        self._cond = Condition()
        self._pending: "Deque[ExportedProfile]" = deque()
        self._in_flight = 0
        self._thread: "Optional[ProfilerThread]" = None
        self._stopping = False
        self._stop_deadline = float("inf")
        self._given_up = False
        self._closed = False
        self._limit = RateLimit()
        self._delay = 0.0  # the current backoff: 0 while uploads succeed
        self._retry_at = 0.0  # no attempt before this time.monotonic()
        self._last_failure = ""  # what the last failed attempt met, "unreachable" or "failed"
        self._last_error = ""
        self.runtime_id = uuid4_hex()  # as ddtrace's (and its traces') runtime-id
        # What every upload of this process carries, made once per process (here, and again in a
        # forked child), not per upload: the platform tag reads the interpreter's binary.
        payload = self._payload
        self._runtime_tags = payload.runtime_tags(self.runtime_id, __version__)
        self._runtime_tags["profiler_config"] = payload.profiler_config_tag(self.config)
        self._process_tags = payload.process_tags(self.config.service is not None)
        self._settings = payload.settings_info(self.config)

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
                thread = ProfilerThread(self._run, THREAD_NAME)
                try:
                    thread.start()
                except RuntimeError:
                    # CPython 3.12 starts no thread once the interpreter is finalizing, atexit
                    # callbacks included: the profile stays queued and stop() uploads it inline.
                    return
                self._thread = thread

    def stop(self, timeout: float) -> None:
        """Upload what is pending, one attempt each, within ``timeout`` seconds; then stop the thread.

        A failed attempt is tried again only when the backoff allows it before the deadline, and
        never after the agent was found unreachable. Without a running uploader thread (none could
        be started at interpreter shutdown), the calling thread makes the attempts itself.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            self._stopping = True
            self._stop_deadline = deadline
            self._cond.notify_all()
            while (
                (self._pending or self._in_flight)
                and not self._given_up
                and self._thread is not None
                and self._thread.is_alive()
            ):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            inline = self._thread is None or not self._thread.is_alive()
        if inline:
            self._deliver_inline(deadline)
        with self._cond:
            if self._pending:
                self.dropped += len(self._pending)
                reason = (" (%s: %s)" % ("agent unreachable" if self._last_failure == UNREACHABLE else "last error", self._last_error)) if self._last_error else ""
                LOG.warning("profiler: %d profile(s) not uploaded before exit%s", len(self._pending), reason)
                self._pending.clear()
            self._closed = True
            self._cond.notify_all()

    def after_fork_in_child(self) -> None:
        """The child uploads its own profiles only, with a runtime id of its own."""
        self._init_state()

    def stats(self) -> "Dict[str, float]":
        """Upload results: profiles sent, rejected (4xx), refused redirects, dropped, failed attempts, waiting."""
        return {
            "sent": float(self.sent),
            "rejected": float(self.rejected),
            "redirects_refused": float(self.redirects_refused),
            "dropped": float(self.dropped),
            "failed_attempts": float(self.failed_attempts),
            "pending": float(len(self._pending)),
        }

    # -- the uploader thread ------------------------------------------------------------

    def _run(self) -> None:
        leave_signals_to_the_program()
        while True:
            with self._cond:
                profile = self._next_locked()
                if profile is None:
                    return
                self._in_flight = 1
                timeout = self._attempt_timeout_locked()
            outcome = self._attempt(profile, timeout)
            with self._cond:
                self._in_flight = 0
                if outcome in (FAILED, UNREACHABLE):
                    if self._closed:
                        self.dropped += 1  # stop's deadline passed during this attempt
                    elif len(self._pending) < self.max_pending:
                        self._pending.appendleft(profile)  # keep it for the next attempt, in order
                    else:
                        self.dropped += 1
                self._cond.notify_all()

    def _next_locked(self) -> "Optional[ExportedProfile]":
        """The next profile to attempt, once the backoff allows; None when closed. Called with the lock held."""
        while not self._closed:
            if self._stopping:
                self._cond.notify_all()  # stop() waits for the queue to empty
                if not self._pending or self._given_up or self._give_up_at_stop_locked():
                    self._cond.wait()
                    continue
            elif not self._pending:
                self._cond.wait()
                continue
            wait = self._retry_at - time.monotonic()
            if wait <= 0:
                return self._pending.popleft()
            self._cond.wait(wait)
        return None

    def _give_up_at_stop_locked(self) -> bool:
        """While stopping, after a failure: whether nothing more is worth trying before the deadline."""
        if not self._last_failure:
            return False
        if self._last_failure == UNREACHABLE or self._retry_at >= self._stop_deadline:
            self._given_up = True
            self._cond.notify_all()
            return True
        return False

    def _attempt_timeout_locked(self) -> "Optional[float]":
        if not self._stopping:
            return None
        return max(min(self.config.api_timeout, self._stop_deadline - time.monotonic()), 0.001)

    def _deliver_inline(self, deadline: float) -> None:
        """``stop`` without an uploader thread: the attempts the thread would have made, from this thread."""
        while True:
            with self._cond:
                if not self._pending or self._give_up_at_stop_locked():
                    return
                wait = self._retry_at - time.monotonic()
                remaining = deadline - time.monotonic()
                if remaining <= 0 or wait >= remaining:
                    return
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                profile = self._pending.popleft()
            outcome = self._attempt(profile, max(min(self.config.api_timeout, deadline - time.monotonic()), 0.001))
            if outcome in (FAILED, UNREACHABLE):
                with self._cond:
                    self._pending.appendleft(profile)

    def _attempt(self, profile: "ExportedProfile", timeout: "Optional[float]" = None) -> str:
        """One upload of ``profile``: SENT, REJECTED (done with it), FAILED or UNREACHABLE (the backoff
        is set: keep it for later). A bug is logged and the profile counted as done (never raised)."""
        began = time.monotonic()
        try:
            self._post(profile, timeout)
        except _Rejected as exc:
            self.rejected += 1
            self._record_success()
            self._log_limited("status-%s" % exc.args[0], "profiler: %s (upload to %s)", exc.args[1], self.endpoint.display)
            return REJECTED
        except _Transient as exc:
            outcome = UNREACHABLE if isinstance(exc, _Unreachable) else FAILED
            self._record_failure(outcome, str(exc))
            self._log_limited("transient", "profiler: cannot upload to %s: %s; will retry", self.endpoint.display, exc)
            return outcome
        except Exception:
            self._log_limited("bug", "profiler: upload failed unexpectedly", exc_info=True)
            return REJECTED
        self.sent += 1
        self._record_success()
        LOG.debug("profiler: uploaded profile %d to %s in %.0f ms", profile.seq, self.endpoint.display, (time.monotonic() - began) * 1e3)
        return SENT

    def _record_success(self) -> None:
        with self._cond:
            self._delay = 0.0
            self._retry_at = 0.0
            self._last_failure = ""

    def _record_failure(self, outcome: str, error: str) -> None:
        with self._cond:
            self.failed_attempts += 1
            self._delay = min(self._delay * 2, MAX_BACKOFF) if self._delay else self.retry_base
            # At least half the backoff: jitter spreads processes out, never shortens a wait to nothing.
            self._retry_at = time.monotonic() + self._delay * (0.5 + 0.5 * _uniform())
            self._last_failure = outcome
            self._last_error = error
            self._cond.notify_all()

    def _follow_tracer_runtime_id(self) -> None:
        # A program traced by ddtrace: its profiles carry the tracer's runtime-id, as ddtrace's do,
        # so that Datadog ties them to its traces.
        tracer_runtime_id = trace_context.tracer_runtime_id
        if tracer_runtime_id is None:
            return
        try:
            runtime_id = tracer_runtime_id()
        except Exception:
            return
        if runtime_id and runtime_id != self.runtime_id:
            self.runtime_id = runtime_id
            self._runtime_tags["runtime-id"] = runtime_id

    def _post(self, profile: "ExportedProfile", timeout: "Optional[float]" = None) -> None:
        http = self._http
        tags = dict(profile.tags)
        self._follow_tracer_runtime_id()
        tags.update(self._runtime_tags)
        content_type, body = http.multipart(
            self._payload.build_parts(profile, tags, self.codec, self._process_tags, self._settings)
        )
        headers = {
            "Content-Type": content_type,
            "DD-EVP-ORIGIN": ORIGIN,
            "DD-EVP-ORIGIN-VERSION": __version__,
            "User-Agent": USER_AGENT,
        }
        headers.update(self.container_headers)
        headers.update(self.endpoint.headers)
        try:
            # Redirects are not followed: the API key must not go along to wherever they point.
            response = self._target.post(body, headers, self.config.api_timeout if timeout is None else timeout)
        except http.Unreachable as exc:
            raise _Unreachable(str(exc)) from None
        except http.HTTPError as exc:
            raise _Transient(str(exc)) from None
        status = response.status
        location = response.headers.get("location")
        if status < 300:
            return
        if status < 400:
            self.redirects_refused += 1
            raise _Rejected(
                "redirect",
                "the %s answered HTTP %d, a redirect to %s: not followed, uploads go only where configured "
                "(check %s); profile dropped"
                % (
                    "intake" if self.endpoint.agentless else "agent",
                    status,
                    http.origin_of(location),
                    "DD_SITE" if self.endpoint.agentless else "DD_TRACE_AGENT_URL",
                ),
            )
        if status == 429 or status >= 500:
            raise _Transient("HTTP %d" % status)
        raise _Rejected(status, _CLIENT_ERRORS.get(status, "the agent refused the profile (HTTP %d)" % status))

    def _log_limited(self, key: str, message: str, *args: object, exc_info: bool = False) -> None:
        LOG.limited(self._limit, key, message, *args, exc_info=exc_info)
