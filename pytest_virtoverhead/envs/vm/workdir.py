"""A guest's files on the host: its work directory (owner file, console
log, worker socket, scratch disk image) under the temporary directory, the
scratch disk itself, and the removal of work directories of dead sessions.
Standard library only."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

from ..base import owner_alive
from ..errors import EnvUnavailable

PREFIX = "virtoverhead-"


def create(tag: str, owner: str) -> str:
    """A new work directory named after ``tag``, with an ``owner`` file
    (``host:pid``, read by :func:`reap`)."""
    path = tempfile.mkdtemp(prefix=f"{PREFIX}{tag}-")
    os.chmod(path, 0o755)
    with open(os.path.join(path, "owner"), "w") as f:
        f.write(owner)
    return path


def is_ours(path: str) -> bool:
    """Is ``path`` a work directory of this plugin (never remove anything else)?"""
    path = os.path.realpath(path)
    return (os.path.dirname(path) == os.path.realpath(tempfile.gettempdir())
            and os.path.basename(path).startswith(PREFIX) and os.path.isdir(path))


def reap(hostname: str) -> list[str]:
    """Remove work directories whose owner is dead (their domain is gone)."""
    removed: list[str] = []
    tmp = tempfile.gettempdir()
    try:
        names = os.listdir(tmp)
    except OSError:
        names = []
    for name in names:
        path = os.path.join(tmp, name)
        if not name.startswith(PREFIX) or not is_ours(path):
            continue
        try:
            with open(os.path.join(path, "owner")) as f:
                owner = f.read().strip()
        except OSError:
            continue
        if owner and not owner_alive(owner, hostname):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(f"vm work directory {path}")
    return removed


def odirect_ok(directory: str) -> bool:
    """Can QEMU open a file here with O_DIRECT (cache=none)? tmpfs cannot."""
    path = os.path.join(directory, ".odirect-probe")
    try:
        fd = os.open(path, os.O_CREAT | os.O_RDWR | getattr(os, "O_DIRECT", 0), 0o600)
        os.close(fd)
        return True
    except OSError:
        return False
    finally:
        try:
            os.unlink(path)
        except OSError:
            pass


def make_scratch(path: str, size_mb: int) -> None:
    """A sparse raw image formatted ext4 on the host (fully initialised, so
    the guest runs no lazy-init thread during measurements)."""
    mkfs = shutil.which("mkfs.ext4") or next(
        (p for p in ("/sbin/mkfs.ext4", "/usr/sbin/mkfs.ext4") if os.path.exists(p)), None)
    if mkfs is None:
        raise EnvUnavailable("mkfs.ext4 is missing on the host (it formats the VM's scratch disk): "
                             "`apt-get install e2fsprogs`")
    with open(path, "wb") as f:
        f.truncate(size_mb * 1024 * 1024)
    os.chmod(path, 0o644)
    proc = subprocess.run([mkfs, "-F", "-q", "-m", "0", "-L", "vo-scratch",
                           "-E", "lazy_itable_init=0,lazy_journal_init=0", path],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        raise EnvUnavailable(f"cannot format the VM scratch disk with {mkfs}: {proc.stdout.strip()}")
