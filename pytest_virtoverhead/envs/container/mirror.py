"""Mirror mode: the host's own interpreter and files in a container.

The image is locally built and empty (``docker import`` of a tiny tar
holding only the host's top-level symlinks, /tmp and the scratch
directory); the host's ``/usr``, ``/etc`` (and ``/bin``, ``/lib``... where
they are real directories), the interpreter prefix, the virtualenv and the
project are bind-mounted read-only. What differs from baremetal is only the
isolation (namespaces, cgroups, seccomp, overlayfs).
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from typing import Any

from ..base import LABEL_PREFIX, RunContext
from ..errors import EnvUnavailable
from .client import docker_sdk

IMAGE_REPO = "pytest-virtoverhead/mirror"
IMAGE_LABEL = f"{LABEL_PREFIX}.image"
#: Where the scratch directory is inside the container (in either mode).
SCRATCH_PATH = "/scratch"
#: Top-level host directories a mirror exposes (symlinks are copied into the
#: image as symlinks, real directories are bind-mounted read-only).
MIRROR_TOP = ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc")
#: Host paths never bind-mounted (the runtime provides its own).
NEVER_MOUNT = ("/proc", "/sys", "/dev", "/run", "/var/run")
#: Environment variables carried from the host into a mirror container
#: besides the common ones (``base.PASS_ENV``).
PASS_ENV_EXTRA = ("LANGUAGE", "PYTHONDONTWRITEBYTECODE")


def mirror_layout() -> list[tuple[str, str]]:
    """(name, symlink target) of the host's top-level symlinks a mirror copies."""
    out = []
    for name in MIRROR_TOP:
        path = "/" + name
        if os.path.islink(path):
            out.append((name, os.readlink(path)))
    return out


def mirror_tar() -> bytes:
    """The mirror image's only layer: host top-level symlinks, /tmp and /scratch.

    Deterministic (fixed mtimes and owners) so its hash names the image.
    """
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        for name, target in mirror_layout():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tf.addfile(info)
        for name in ("tmp", SCRATCH_PATH.strip("/")):
            info = tarfile.TarInfo(name)
            info.type = tarfile.DIRTYPE
            info.mode = 0o1777
            tf.addfile(info)
    return buf.getvalue()


def ensure_mirror_image(client) -> Any:
    """The cached mirror image (built here, never pulled)."""
    data = mirror_tar()
    tag = hashlib.sha256(data).hexdigest()[:12]
    ref = f"{IMAGE_REPO}:{tag}"
    docker = docker_sdk()
    try:
        return client.images.get(ref)
    except docker.errors.ImageNotFound:
        pass
    client.api.import_image_from_data(
        data, repository=IMAGE_REPO, tag=tag,
        changes=[f'LABEL {IMAGE_LABEL}="mirror"', "WORKDIR /"],
    )
    return client.images.get(ref)


def _covered(path: str, by: list[str]) -> bool:
    return any(path == p or path.startswith(p.rstrip("/") + "/") for p in by)


def mirror_binds(ctx: RunContext) -> dict[str, dict[str, str]]:
    """Read-only bind mounts that let the host's interpreter run inside."""
    roots: list[str] = []
    for name in MIRROR_TOP:
        path = "/" + name
        if os.path.isdir(path) and not os.path.islink(path):
            roots.append(path)
    extra: list[str] = []
    for path in ctx.host_paths():
        if path == "/":
            raise EnvUnavailable(
                "a container mirror cannot bind-mount / (the project, virtualenv or interpreter "
                "lives at the root of the file system); use the option image= instead"
            )
        if _covered(path, list(NEVER_MOUNT)) or _covered(path, roots) or _covered(path, extra):
            continue
        extra.append(path)
    return {p: {"bind": p, "mode": "ro"} for p in roots + extra}
