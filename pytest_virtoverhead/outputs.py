"""Output files of a run (``--virt-json``, ``--virt-report``, ...): checked
when the session starts, so that a path that cannot be written is a usage
error before anything is measured rather than a traceback after it.

Standard library only; no pytest.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile


def output_problem(path: str, example: str = "virt.json") -> str | None:
    """Why ``path`` cannot take an output file, or None when it can.

    Refused: an existing directory; something that is not a regular file
    (``/dev/null``: the file is replaced by a rename, which would replace
    the device); a path below a file; a directory where no file can be
    created (read-only, ``/proc``, no permission: probed by creating and
    removing a temporary file there, which also holds for root). Missing
    directories are fine when the nearest existing one is writable: the
    writer creates them.
    """
    if not path or not str(path).strip():
        return "empty path"
    full = os.path.abspath(os.path.expanduser(str(path)))
    try:
        st = os.stat(full)
    except FileNotFoundError:
        st = None
    except NotADirectoryError:
        st = None  # a component is a file: found below
    except OSError as exc:
        return f"cannot inspect it: {exc.strerror or exc}"
    if st is not None:
        if stat.S_ISDIR(st.st_mode):
            return "it is a directory; name a file in it, e.g. " + os.path.join(str(path), example)
        if not stat.S_ISREG(st.st_mode):
            return "it exists and is not a regular file (the output replaces it with a rename)"
    parent = os.path.dirname(full)
    while not os.path.lexists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        return f"{parent} is a file, not a directory"
    try:
        fd, probe = tempfile.mkstemp(prefix=".virt-probe-", dir=parent)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if exc.errno in (errno.EROFS,):
            reason = "read-only file system"
        return f"cannot create a file in {parent}: {reason}"
    os.close(fd)
    try:
        os.unlink(probe)
    except OSError:
        pass
    return None


def check_outputs(paths: dict[str, str | None]) -> list[str]:
    """``{"--virt-json": path, ...}`` -> the messages for those that cannot
    be written (options whose path is None are not checked)."""
    out = []
    for option, path in paths.items():
        if path is None:
            continue
        problem = output_problem(path, "virt-report.html" if "report" in option else
                                 "virt.md" if "markdown" in option else "virt.json")
        if problem:
            out.append(f"{option}: cannot write {path}: {problem}")
    return out
