"""The container id of this process, from its cgroup file (for the ``Datadog-Container-ID`` header)."""

from __future__ import annotations

import re

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional

# A 64-hex container id (docker, containerd, cri-o), a 32-hex-with-suffix ECS task id, or a pod-style UUID.
_CONTAINER_ID = re.compile(r"([0-9a-f]{64})|([0-9a-f]{32}-\d+)|([0-9a-f]{8}(?:-[0-9a-f]{4}){4}$)")


def container_id(cgroup_text: str) -> "Optional[str]":
    """The container id found in ``/proc/self/cgroup`` contents, or None outside a container."""
    for line in cgroup_text.splitlines():
        parts = line.split(":", 2)
        if len(parts) < 3:
            continue
        for segment in reversed(parts[2].split("/")):
            segment = segment.rsplit(".scope", 1)[0]
            match = _CONTAINER_ID.search(segment)
            if match:
                return match.group(0)
    return None


def read_container_id(path: str = "/proc/self/cgroup") -> "Optional[str]":
    """This process's container id, or None (no cgroup file, or not in a container)."""
    try:
        with open(path) as f:
            return container_id(f.read())
    except OSError:
        return None
