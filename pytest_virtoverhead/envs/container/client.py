"""The Docker daemon as the container backend sees it: the lazily imported
SDK, a connection that has answered a ping, one-line error texts, which
errors mean the daemon is gone, and the daemon calls a container's end needs
(its final state, its removal, the removal of what dead sessions left).

The docker SDK is imported inside these functions only, when a container is
asked for; the plugin loads without it.
"""

from __future__ import annotations

import os
import re
import time
from typing import Any

from ..base import OWNER_LABEL, owner_alive
from ..errors import EnvUnavailable

HOW_TO_START = "start one with `sudo dockerd --bridge=none --iptables=false` or run scripts/provision.sh"


def docker_sdk():
    """The docker SDK module, or EnvUnavailable saying how to install it."""
    try:
        import docker
    except ImportError:
        raise EnvUnavailable(
            "the container environment needs the docker SDK: pip install docker "
            "(or pip install 'pytest-virtoverhead[container]')"
        ) from None
    return docker


def daemon_address(url: str | None = None) -> str:
    """Where the daemon is: ``url``, else DOCKER_HOST, else the default socket."""
    return url or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def short_error(exc: BaseException) -> str:
    """One line of an exception, without the SDK's nesting noise."""
    text = getattr(exc, "explanation", None) or str(exc)
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    text = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    text = re.sub(r"\s+", " ", text)
    return text[:300]


def gone_errors() -> tuple[type[BaseException], ...]:
    """What the SDK raises when the daemon is not there (any more): the
    connection is refused, reset or times out. Not API errors."""
    import requests

    return (requests.exceptions.ConnectionError, requests.exceptions.Timeout, ConnectionError)


def gone_reason(exc: BaseException) -> str:
    """'Connection refused' rather than requests' nested tuple of reprs."""
    seen: list[BaseException] = [exc]
    while seen:
        e = seen.pop(0)
        if isinstance(e, OSError) and e.strerror:
            return e.strerror
        seen.extend(a for a in e.args if isinstance(a, BaseException))
        if e.__context__ is not None and len(seen) < 10:
            seen.append(e.__context__)
    return short_error(exc)


def connect(url: str | None = None, timeout: float = 60.0):
    """A DockerClient that has answered a ping, or EnvUnavailable."""
    docker = docker_sdk()
    where = daemon_address(url)
    try:
        client = docker.DockerClient(base_url=url, timeout=int(timeout)) if url else docker.from_env(timeout=int(timeout))
        client.ping()
    except Exception as exc:  # noqa: BLE001 - DockerException, requests errors, OSError...
        reason = short_error(exc)
        if "ermission denied" in reason:
            # The daemon runs; its socket does not let this user in.
            raise EnvUnavailable(f"the Docker daemon at {where} does not let this user in (permission denied "
                                 "on its socket): run as root or add your user to the `docker` group") from None
        raise EnvUnavailable(f"no Docker daemon at {where} ({reason}): {HOW_TO_START}") from None
    return client


def final_state(client, cid: str, since: float) -> dict[str, Any]:
    """Container ``cid``'s State (Status, ExitCode, OOMKilled); from the
    daemon's event log since ``since`` (epoch seconds) when AutoRemove
    already removed the container."""
    docker = docker_sdk()
    try:
        return client.api.inspect_container(cid).get("State") or {}
    except docker.errors.NotFound:
        pass
    except docker.errors.DockerException:
        return {}
    state: dict[str, Any] = {}
    try:
        events = client.api.events(since=int(since) - 1, until=f"{time.time():.6f}",
                                   filters={"container": cid}, decode=True)
        for event in events:
            action = event.get("status") or event.get("Action")
            if action == "oom":
                state["OOMKilled"] = True
            elif action == "die":
                code = (event.get("Actor") or {}).get("Attributes", {}).get("exitCode")
                state.update({"Status": "exited (removed)", "ExitCode": int(code) if code else None})
    except docker.errors.DockerException:
        pass
    return state


def wait_removed(client, cid: str, timeout: float = 15.0) -> None:
    """Return once container ``cid`` is gone (or ``timeout`` seconds passed)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            client.api.inspect_container(cid)
        except Exception:  # noqa: BLE001 - NotFound: gone, as wanted
            return
        time.sleep(0.02)


def remove(client, cid: str | None, volume: str | None) -> None:
    """Remove container ``cid`` (an id, or the name of one whose creation
    may have been interrupted) and ``volume``; wait until they are gone."""
    docker = docker_sdk()
    if cid is not None:
        try:
            client.api.remove_container(cid, force=True, v=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            # "removal already in progress": AutoRemove won the race
            # (the worker exited on "shutdown"); wait until it is gone.
            if "in progress" not in str(exc):
                raise
        wait_removed(client, cid)
    if volume is not None:
        try:
            client.api.remove_volume(volume, force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError:
            # The container may still be going away; wait for it once.
            if cid is not None:
                wait_removed(client, cid)
            try:
                client.api.remove_volume(volume, force=True)
            except docker.errors.NotFound:
                pass


def remove_orphans(client, hostname: str) -> list[str]:
    """Remove containers and volumes labelled with an owner that is dead;
    return what was removed."""
    docker = docker_sdk()
    removed: list[str] = []
    try:
        containers = client.api.containers(all=True, filters={"label": OWNER_LABEL})
    except docker.errors.DockerException:
        containers = []
    for c in containers:
        labels = c.get("Labels") or {}
        if owner_alive(labels.get(OWNER_LABEL, ""), hostname):
            continue
        try:
            client.api.remove_container(c["Id"], force=True, v=True)
            removed.append("container " + ((c.get("Names") or [c["Id"][:12]])[0]).lstrip("/"))
        except docker.errors.DockerException:
            pass
    try:
        volumes = client.api.volumes(filters={"label": OWNER_LABEL}).get("Volumes") or []
    except docker.errors.DockerException:
        volumes = []
    for v in volumes:
        labels = v.get("Labels") or {}
        if owner_alive(labels.get(OWNER_LABEL, ""), hostname):
            continue
        try:
            client.api.remove_volume(v["Name"], force=True)
            removed.append("volume " + v["Name"])
        except docker.errors.DockerException:
            pass
    return removed
