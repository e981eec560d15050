"""Environment kinds, and the names tests and the session use.

The layer: :mod:`.base` (the :class:`Backend` protocol a kind implements,
with :class:`EnvSpec` and :class:`RunContext`), :mod:`.channel` (the byte
stream to a worker and the request/reply channel over it), :mod:`.handle`
(:class:`Environment`, what the fixtures return), :mod:`.errors`; the kinds
in :mod:`.baremetal`, :mod:`.container` and :mod:`.vm`, found through
:data:`KINDS`. Backends are imported lazily: the docker SDK and
libvirt-python are needed only when a container or VM is asked for."""

from __future__ import annotations

import importlib

from .base import Backend, EnvSpec, RunContext
from .errors import EnvError, EnvUnavailable, JobTimeout, RemoteError, SerializationError, WorkerDied
from .handle import Environment, Measurement

#: kind -> "module:class" of its backend.
KINDS: dict[str, str] = {
    "baremetal": "pytest_virtoverhead.envs.baremetal:BaremetalBackend",
    "container": "pytest_virtoverhead.envs.container:ContainerBackend",
    "vm": "pytest_virtoverhead.envs.vm:VMBackend",
}


def backend_class(kind: str) -> type[Backend]:
    """The backend class of ``kind``; ValueError lists the known kinds."""
    try:
        target = KINDS[kind]
    except KeyError:
        raise ValueError(f"unknown environment kind {kind!r}; known kinds: {', '.join(KINDS)}") from None
    module_name, _, cls_name = target.partition(":")
    module = importlib.import_module(module_name)
    try:
        return getattr(module, cls_name)
    except AttributeError:
        raise ImportError(f"{module_name} does not define {cls_name}") from None


__all__ = [
    "KINDS", "Backend", "EnvError", "EnvSpec", "Environment", "EnvUnavailable", "JobTimeout",
    "Measurement", "RemoteError", "RunContext", "SerializationError", "WorkerDied", "backend_class",
]
