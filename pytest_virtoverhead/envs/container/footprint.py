"""A container's footprint on the host, for
:class:`.backend.ContainerBackend`: its memory cgroup (usage and the
kernel's high-water mark), its CPU time (its cgroup's, plus the containerd
shim's own), the image's size and the container's writable layer.
"""

from __future__ import annotations

from typing import Any

from ... import footprint


def target(client, cid: str) -> tuple[dict[str, str], int | None] | None:
    """(the cgroup directories of its init process, the containerd shim's
    pid) of running container ``cid``; None when it has no process."""
    api = client.api  # a short timeout (the client's default is a minute or more)
    info = api._result(api._get(api._url("/containers/{0}/json", cid), timeout=5), True)
    pid = int((info.get("State") or {}).get("Pid") or 0)
    if pid <= 0:
        return None
    dirs = footprint.cgroup_dirs(pid)
    shim = None
    try:
        ppid = int(footprint.read_text(f"/proc/{pid}/stat").rsplit(")", 1)[1].split()[1])
        if "shim" in footprint.read_text(f"/proc/{ppid}/comm"):
            shim = ppid
    except (OSError, ValueError, IndexError):
        pass
    return dirs, shim


def sample(dirs: dict[str, str], shim: int | None) -> dict[str, Any]:
    """The memory cgroup (usage and the kernel's high-water mark) and CPU
    (its cgroup's, plus the containerd shim's own) of a container's
    :func:`target` (its cgroup directories and shim)."""
    out: dict[str, Any] = {}
    mem = footprint.cgroup_memory(dirs)
    if mem is not None:
        where = f"cgroup v{mem['version']} {mem['dir']}"
        out[footprint.MEMORY] = footprint.Reading(mem["current"], "B", f"{where}/{mem['current_file']}")
        if mem.get("peak") is not None:
            out[footprint.MEMORY_PEAK] = footprint.Reading(mem["peak"], "B", f"{where}/{mem['peak_file']}")
        fields = {"anon": "total_rss", "cache": "total_cache"} if mem["version"] == 1 else \
            {"anon": "anon", "cache": "file"}
        for part, name in fields.items():
            if mem.get(part) is not None:
                out[f"{footprint.MEMORY}.{part}"] = footprint.Reading(mem[part], "B",
                                                                      f"{where}/memory.stat {name}")
    cpu = footprint.cgroup_cpu_seconds(dirs)
    if cpu is not None:
        seconds, what = cpu
        source = f"cgroup {what}"
        if shim is not None:
            try:
                seconds += footprint.proc_cpu_seconds(shim, children=False)
                source += f" + containerd shim (pid {shim}) /proc/<pid>/stat utime+stime"
            except (OSError, ValueError, IndexError):
                pass
        out[footprint.CPU] = footprint.Reading(seconds, "s", source)
    return out


def storage(client, cid: str | None, image: Any, what: str) -> dict[str, Any]:
    """The image (docker image inspect Size: layers; ``what`` says which)
    and container ``cid``'s writable layer (docker container inspect SizeRw)."""
    out: dict[str, Any] = {}
    if image is not None:
        size = (getattr(image, "attrs", None) or {}).get("Size")
        if size is not None:
            out["image"] = footprint.Reading(int(size), "B", f"docker image inspect Size: {what}")
    if cid is not None and client is not None:
        api = client.api  # the SDK's inspect_container has no size argument: the API's ?size=1
        url = api._url("/containers/{0}/json", cid)
        info = api._result(api._get(url, params={"size": 1}, timeout=5), True)
        if info.get("SizeRw") is not None:
            out["writable_layer"] = footprint.Reading(int(info["SizeRw"]), "B",
                                                      "docker container inspect SizeRw (its overlayfs upper layer)")
    return out
