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


def _identity(path: str) -> tuple[object, ...]:
    """What makes two paths one file: the device and inode of a file that
    exists (a hard link, a symlink, ``./x`` and ``x``), else the real path
    (symlinks of its directories resolved)."""
    full = os.path.realpath(os.path.expanduser(str(path)))
    try:
        st = os.stat(full)
    except OSError:
        return ("path", full)
    return ("inode", st.st_dev, st.st_ino) if stat.S_ISREG(st.st_mode) else ("path", full)


def shared_paths(outputs: dict[str, str | None], inputs: dict[str, str] | None = None,
                 appended: frozenset[str] = frozenset()) -> list[str]:
    """Messages for outputs that would land on one file: two outputs at one
    path (the last written would replace the other, each said "written"),
    or an output at an input's path (the input overwritten). ``outputs`` and
    ``inputs`` map an option (or a variable) to its path; the options in
    ``appended`` are appended to rather than replaced (``GITHUB_STEP_SUMMARY``).
    Paths are compared as files, symlinks and hard links resolved."""
    seen: dict[tuple[object, ...], str] = {}
    for option, path in (inputs or {}).items():
        seen.setdefault(_identity(path), option)
    out = []
    for option, path in outputs.items():
        if not path:
            continue
        key = _identity(path)
        other = seen.get(key)
        if other is None:
            seen[key] = option
            continue
        if other in (inputs or {}):
            out.append(f"{option}: {path} is also an input ({other}): writing it would destroy what is read; "
                       "name another output file")
        elif option in appended or other in appended:
            summary, named = (option, other) if option in appended else (other, option)
            out.append(f"{named}: {path} is {summary}, where the same summary is appended already: {named} "
                       f"would first replace what earlier steps wrote there, then the summary would be appended "
                       f"a second time; drop {named}, or name another file")
        else:
            out.append(f"{option}: {path} is also the path of {other}: one output would replace the other; "
                       "give each its own file")
    return out
