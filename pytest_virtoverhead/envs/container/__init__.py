"""The ``container`` kind: the worker in a Docker container, through the SDK.

Two modes: **mirror** (default; :mod:`.mirror`), the host's own interpreter
on the host's own files bind-mounted read-only into an empty local image, so
that what differs from baremetal is only the isolation; **image** (option
``image``; :mod:`.image`), the user's own image and its Python. The backend
(:mod:`.backend`) runs one long-lived container per environment per session
and talks to its worker over the attach stream (:mod:`.stream`); the daemon
connection and its errors are in :mod:`.client`, the footprint readings in
:mod:`.footprint`.

The docker SDK is imported only when a container is asked for; the plugin
loads without it.
"""

from .backend import ContainerBackend

__all__ = ["ContainerBackend"]
