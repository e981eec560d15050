"""Small file-system helpers shared by the reports, the plugin and the
backends: an atomic file write, cache pruning and the default cache
directory. Standard
library only."""

from __future__ import annotations

import os
import tempfile
from typing import Callable


def atomic_write(path: str, data: bytes | str, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the
    whole new one, never a part (a temporary file beside it, then a rename).
    ``mode`` is applied before the rename (``mkstemp`` makes 0600)."""
    directory = os.path.dirname(os.path.abspath(path)) or "."
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".virt-", suffix=".tmp", dir=directory)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def prune(directory: str, match: Callable[[str], bool], count: int, keep: str = "") -> None:
    """Remove the files of ``directory`` whose names ``match`` but the
    ``count`` newest (by mtime) and ``keep``; quietly, as a cache is pruned."""
    try:
        paths = [os.path.join(directory, n) for n in os.listdir(directory) if match(n)]
        paths.sort(key=lambda p: os.stat(p).st_mtime, reverse=True)
    except OSError:
        return
    for path in paths[count:]:
        if path != keep:
            try:
                os.unlink(path)
            except OSError:
                pass


def default_cache_dir() -> str:
    """Where built images, kernels and initramfs are cached unless the ini
    key ``virt_cache_dir`` says otherwise: ``$XDG_CACHE_HOME`` (default
    ``~/.cache``) ``/pytest-virtoverhead``."""
    return os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "pytest-virtoverhead")
