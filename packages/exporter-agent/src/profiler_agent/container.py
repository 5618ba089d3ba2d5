"""Which container or cgroup this process runs in, for the agent's tagging headers.

As ddtrace's: ``Datadog-Container-ID`` and ``Datadog-Entity-ID: ci-<id>`` when the cgroup file
names a container (a 64-hex docker/containerd/cri-o id, an ECS task id, or a full UUID); else
``Datadog-Entity-ID: in-<inode>`` of this process's cgroup node (cgroup v2 with a private
namespace shows no id, but the agent maps the inode to the container); ``Datadog-External-Env``
from ``DD_EXTERNAL_ENV`` (set by the admission controller). Read without re (milliseconds of every
profiled program's start).
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Dict, Mapping, Optional

_HEX = frozenset("0123456789abcdef")
_SCOPE = ".scope"


def _is_hex(text: str) -> bool:
    return all(c in _HEX for c in text)


def _is_uuid(text: str) -> bool:
    """8-4-4-4-12 lower-case hex digits, the separators ``-`` or ``_`` (as in systemd units)."""
    if len(text) != 36:
        return False
    return all(text[i] in "-_" for i in (8, 13, 18, 23)) and _is_hex(
        text[0:8] + text[9:13] + text[14:18] + text[19:23] + text[24:36]
    )


def _cgroup_line(line: str) -> "Optional[str]":
    """The path of a ``/proc/self/cgroup`` line ``ID:CONTROLLERS:PATH``, or None for another line."""
    hierarchy, sep, rest = line.partition(":")
    if not sep or not hierarchy.isdecimal():
        return None
    _, sep, path = rest.partition(":")
    return path if sep and path else None


def _id_in_name(name: str) -> "Optional[str]":
    """The container id a cgroup node's name ends with (before an optional ``.scope``): a UUID, 64 hex
    digits or an ECS task id (32 hex, ``-``, digits); the one starting last where several do."""
    if name.endswith(_SCOPE):
        name = name[: -len(_SCOPE)]
    size = len(name)
    digits = size - len(name.rstrip("0123456789"))
    starts = []
    if size >= 36 and _is_uuid(name[size - 36 :]):
        starts.append(size - 36)
    if size >= 64 and _is_hex(name[size - 64 :]):
        starts.append(size - 64)
    task_start = size - digits - 33
    if digits and task_start >= 0 and name[size - digits - 1] == "-" and _is_hex(name[task_start : size - digits - 1]):
        starts.append(task_start)
    return name[max(starts) :] if starts else None


CONTAINER_ID_HEADER = "Datadog-Container-ID"
ENTITY_ID_HEADER = "Datadog-Entity-ID"
EXTERNAL_ENV_HEADER = "Datadog-External-Env"


def container_id(cgroup_text: str) -> "Optional[str]":
    """The container id found in ``/proc/self/cgroup`` contents, or None outside a container."""
    for line in cgroup_text.splitlines():
        path = _cgroup_line(line.strip())
        if path is None:
            continue
        found = _id_in_name(path.rsplit("/", 1)[-1])
        if found:
            return found
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
                path = _cgroup_line(line.strip())
                inode = inode_of(cgroup_root, path) if path is not None else None
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

