"""Which container or cgroup this process runs in, for the agent's tagging headers.

As ddtrace's: ``Datadog-Container-ID`` and ``Datadog-Entity-ID: ci-<id>`` when the cgroup file
names a container (a 64-hex docker/containerd/cri-o id, an ECS task id, or a full UUID); else
``Datadog-Entity-ID: in-<inode>`` of this process's cgroup node (cgroup v2 with a private
namespace shows no id, but the agent maps the inode to the container); ``Datadog-External-Env``
from ``DD_EXTERNAL_ENV`` (set by the admission controller).
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Dict, Mapping, Optional

_UUID = r"[0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12}"
# A 64-hex container id, a 32-hex-with-suffix ECS task id, or a UUID (pod-style, or with _ as in systemd units).
_CONTAINER_ID = r"(?:.+)?(%s|[0-9a-f]{64}|[0-9a-f]{32}-\d+)(?:\.scope)?$" % _UUID
_LINE = r"^(\d+):([^:]*):(.+)$"
_compiled: "Dict[str, object]" = {}


def _pattern(source: str):  # type: ignore[no-untyped-def]
    """``source`` compiled, once: re is imported when the exporter is built (on the thread building
    it), not with the module, which every profiled process imports."""
    pattern = _compiled.get(source)
    if pattern is None:
        import re

        pattern = _compiled[source] = re.compile(source)
    return pattern

CONTAINER_ID_HEADER = "Datadog-Container-ID"
ENTITY_ID_HEADER = "Datadog-Entity-ID"
EXTERNAL_ENV_HEADER = "Datadog-External-Env"


def container_id(cgroup_text: str) -> "Optional[str]":
    """The container id found in ``/proc/self/cgroup`` contents, or None outside a container."""
    for line in cgroup_text.splitlines():
        match = _pattern(_LINE).match(line.strip())
        if not match:
            continue
        found = _pattern(_CONTAINER_ID).match(match.group(3).rsplit("/", 1)[-1])
        if found:
            return found.group(1)
    return None


def _inode(cgroup_root: str, path: str) -> "Optional[int]":
    try:
        return os.stat(os.path.join(cgroup_root, path.strip("/"))).st_ino
    except OSError:
        return None


def entity_headers(
    cgroup_text: "Optional[str]",
    environ: "Mapping[str, str]",
    cgroup_root: str = "/sys/fs/cgroup",
    inode_of: "Callable[[str, str], Optional[int]]" = _inode,
) -> "Dict[str, str]":
    """The container headers for ``cgroup_text`` (the cgroup file, None when unreadable)."""
    headers: "Dict[str, str]" = {}
    if cgroup_text:
        cid = container_id(cgroup_text)
        if cid:
            headers[CONTAINER_ID_HEADER] = cid
            headers[ENTITY_ID_HEADER] = "ci-" + cid
        else:
            for line in cgroup_text.splitlines():
                match = _pattern(_LINE).match(line.strip())
                inode = inode_of(cgroup_root, match.group(3)) if match else None
                if inode is not None:
                    headers[ENTITY_ID_HEADER] = "in-%d" % inode
                    break
    external = environ.get("DD_EXTERNAL_ENV")
    if external:
        headers[EXTERNAL_ENV_HEADER] = external
    return headers


def read_entity_headers(path: str = "/proc/self/cgroup") -> "Dict[str, str]":
    """This process's container headers (empty outside a container and cgroups)."""
    try:
        with open(path) as f:
            text: "Optional[str]" = f.read()
    except OSError:
        text = None
    return entity_headers(text, os.environ)

