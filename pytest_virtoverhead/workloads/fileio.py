"""File I/O workload modelled on sysbench fileio: prepare, run, cleanup.

Files ``test_file.0`` ... ``test_file.N-1`` live in a directory under the
environment's scratch directory (``$VIRTOVERHEAD_SCRATCH``: a temporary
directory on the host, the container's writable layer or a volume, the VM's
scratch disk; ``tempfile.gettempdir()`` in a plain pytest run), so the
numbers weigh that environment's storage stack: page cache, overlayfs, a
virtual disk.

One I/O request is one ``os.pwrite`` or ``os.preadv`` of ``block_size``
bytes from a page-aligned ``mmap`` buffer, single-threaded and synchronous,
as ``sysbench fileio --file-io-mode=sync --threads=1``. Without
``direct=True`` most requests are served by the page cache (as sysbench's are
by default); ``fsync`` every ``fsync_freq`` writes is what reaches the disk.

Modes (sysbench's names):

- ``seqwr``: sequential write into fresh files (truncated before timing, so
  writes allocate; files are topped up to their prepared size afterwards,
  untimed, so later runs find them whole)
- ``seqrewr``: sequential overwrite of the prepared data
- ``seqrd``: sequential read
- ``rndrd``, ``rndwr``: block-aligned random reads or writes in random files
- ``rndrw``: random reads and writes mixed ``rw_ratio`` to 1 (1.5 default)

Rates are per second of the timed loop (including its fsyncs), like
sysbench's: ``reads_per_s``, ``writes_per_s``, ``fsyncs_per_s``,
``read_mib_per_s``, ``written_mib_per_s`` and ``mib_per_s`` (their sum,
also ``rate``).
"""

from __future__ import annotations

import errno
import glob
import json
import mmap
import os
import random
import shutil
import time
from typing import Any

from ._common import SCRATCH_ENV, finish, positive_int, scratch_dir

MiB = 1024 * 1024
MODES = ("seqwr", "seqrewr", "seqrd", "rndrd", "rndwr", "rndrw")
DIRNAME = "virtoverhead-fileio"
MANIFEST = "virtoverhead-fileio.json"
_WRITE_MODES = ("seqwr", "seqrewr", "rndwr")
_FULL_ERRNOS = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))


class NoSpaceError(OSError):
    """The scratch directory's filesystem is full (ENOSPC or EDQUOT)."""


class DirectIOUnsupported(ValueError):
    """The filesystem of the scratch directory refuses O_DIRECT."""


def default_directory() -> str:
    """Where the test files go unless told: ``<scratch>/virtoverhead-fileio``."""
    return os.path.join(scratch_dir(), DIRNAME)


def filesystem_type(path: str) -> str:
    """The type of the filesystem holding ``path`` ("ext4", "tmpfs",
    "overlay", "9p", ...) from /proc/self/mounts; "unknown" elsewhere."""
    path = os.path.realpath(path)
    best, fstype = "", "unknown"
    try:
        with open("/proc/self/mounts", encoding="utf-8", errors="replace") as f:
            for line in f:
                parts = line.split()
                if len(parts) < 3:
                    continue
                mnt = parts[1].replace("\\040", " ")
                if (path == mnt or path.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best):
                    best, fstype = mnt, parts[2]
    except OSError:
        pass
    return fstype


def _no_space(directory: str, needed: int | None = None) -> NoSpaceError:
    existing = directory
    while not os.path.exists(existing) and os.path.dirname(existing) != existing:
        existing = os.path.dirname(existing)  # the directory may be cleaned up already
    try:
        free = f"{shutil.disk_usage(existing).free / MiB:.1f} MiB free"
    except OSError:
        free = "free space unknown"
    need = f"needed {needed / MiB:.1f} MiB, " if needed else ""
    return NoSpaceError(
        errno.ENOSPC,
        f"no space left on the filesystem ({filesystem_type(directory)}) of the scratch directory "
        f"{directory} ({need}{free}): use a smaller total_size, or point {SCRATCH_ENV} (or the "
        f"environment's scratch option) at a larger filesystem",
        directory,
    )


def _no_direct(directory: str, detail: str = "") -> DirectIOUnsupported:
    return DirectIOUnsupported(
        f"the filesystem ({filesystem_type(directory)}) of the scratch directory {directory} refuses "
        f"O_DIRECT{detail} (ramfs, tmpfs before Linux 6.6 and some overlayfs setups do): run with "
        f"direct=False, or point {SCRATCH_ENV} at a disk-backed filesystem such as ext4 or xfs"
    )


def _file(directory: str, i: int) -> str:
    return os.path.join(directory, f"test_file.{i}")


def _fill(fd: int, start: int, end: int, chunk: bytes) -> None:
    pos = start
    while pos < end:
        pos += os.pwrite(fd, chunk[: end - pos], pos)


def prepare(total_size: int = 16 * MiB, files: int = 4, directory: str | None = None) -> dict[str, Any]:
    """Create ``files`` files of ``total_size // files`` bytes each (written
    and fsynced) in ``directory`` (default :func:`default_directory`),
    replacing earlier ones. Records the MiB written ("MiB", rate in MiB/s);
    returns ``seconds``, ``rate``/``unit`` (MiB/s), ``directory``, ``files``,
    ``file_size``, ``total_size`` (bytes), ``fs_type``.

    A full filesystem raises :class:`NoSpaceError` naming the directory (the
    partial files are removed).
    """
    positive_int("total_size", total_size)
    positive_int("files", files)
    file_size = total_size // files
    if file_size < 1:
        raise ValueError(f"total_size ({total_size}) is smaller than one byte per file ({files} files)")
    directory = directory or default_directory()
    cleanup(directory)
    os.makedirs(directory, exist_ok=True)
    chunk = bytes(range(256)) * (MiB // 256)
    t0 = time.perf_counter()
    try:
        for i in range(files):
            fd = os.open(_file(directory, i), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                _fill(fd, 0, file_size, chunk)
                os.fsync(fd)
            finally:
                os.close(fd)
    except OSError as exc:
        if exc.errno in _FULL_ERRNOS:
            cleanup(directory)
            raise _no_space(directory, file_size * files) from None
        raise
    seconds = time.perf_counter() - t0
    with open(os.path.join(directory, MANIFEST), "w", encoding="utf-8") as f:
        json.dump({"files": files, "file_size": file_size, "total_size": file_size * files}, f)
    return finish(file_size * files / MiB, "MiB", seconds, directory=directory, files=files,
                  file_size=file_size, total_size=file_size * files, fs_type=filesystem_type(directory))


def _manifest(directory: str) -> dict[str, Any]:
    try:
        with open(os.path.join(directory, MANIFEST), encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"no prepared test files in {directory}: call fileio.prepare() first (or use fileio.benchmark())"
        ) from None


def run(mode: str, block_size: int = 16384, fsync_freq: int = 100, direct: bool = False, ops: int | None = None,
        duration: float | None = None, rw_ratio: float = 1.5, fsync_end: bool = True, seed: int | None = None,
        directory: str | None = None) -> dict[str, Any]:
    """Run ``mode`` (one of :data:`MODES`) over the prepared files.

    ``ops`` requests, or for ``duration`` seconds, whichever ends first
    (neither: one pass, ``total_size // block_size`` requests). ``fsync``
    the written files every ``fsync_freq`` writes (0: never) and at the end
    (``fsync_end``). ``direct=True`` opens the files with O_DIRECT (bypassing
    the page cache; ``block_size`` must be a multiple of 512) and raises
    :class:`DirectIOUnsupported` (a ValueError) where the filesystem refuses
    it. ``seed`` fixes the random offsets and the rndrw mix.

    Records the MiB read and written ("MiB", rate in MiB/s). Returns
    ``seconds``, ``rate``/``mib_per_s`` and ``unit`` (MiB/s), ``reads``,
    ``writes``, ``fsyncs`` (counts), ``reads_per_s``, ``writes_per_s``,
    ``fsyncs_per_s`` (per second), ``read_mib_per_s``,
    ``written_mib_per_s`` (MiB/s), ``mode``, ``block_size``, ``direct``,
    ``directory``, ``fs_type``.
    """
    if mode not in MODES:
        raise ValueError(f"unknown fileio mode {mode!r}; known: {', '.join(MODES)}")
    positive_int("block_size", block_size)
    positive_int("fsync_freq", fsync_freq, 0)
    if ops is not None:
        positive_int("ops", ops, 0)
    if duration is not None and not duration > 0:
        raise ValueError(f"duration must be positive, got {duration!r}")
    if not rw_ratio >= 0:
        raise ValueError(f"rw_ratio must be >= 0, got {rw_ratio!r}")
    directory = directory or default_directory()
    info = _manifest(directory)
    nfiles, file_size = int(info["files"]), int(info["file_size"])
    per_file = file_size // block_size
    if per_file < 1:
        raise ValueError(f"block_size {block_size} is larger than the prepared files ({file_size} bytes each)")
    if ops is None and duration is None:
        ops = nfiles * per_file
    flags = os.O_RDWR | getattr(os, "O_CLOEXEC", 0)
    if direct:
        if not hasattr(os, "O_DIRECT"):
            raise DirectIOUnsupported("O_DIRECT does not exist on this platform: run with direct=False")
        if block_size % 512:
            raise ValueError(f"direct=True needs a block_size that is a multiple of 512, got {block_size}")
        flags |= os.O_DIRECT

    fds: list[int] = []
    buf = mmap.mmap(-1, block_size)  # page-aligned, as O_DIRECT needs
    buf.write(bytes(range(256)) * (block_size // 256) + bytes(block_size % 256))
    rng = random.Random(seed)
    reads = writes = fsyncs = pending = 0
    read_bytes = written_bytes = 0
    try:
        for i in range(nfiles):
            try:
                fds.append(os.open(_file(directory, i), flags))
            except FileNotFoundError:
                raise FileNotFoundError(f"{_file(directory, i)} is missing: call fileio.prepare() first") from None
            except OSError as exc:
                if direct and exc.errno == errno.EINVAL:
                    raise _no_direct(directory) from None
                raise
        if mode == "seqwr":
            for fd in fds:
                os.ftruncate(fd, 0)
        seq = mode.startswith("seq")
        writing = mode in _WRITE_MODES
        mixed = mode == "rndrw"
        read_share = rw_ratio / (1.0 + rw_ratio)
        dirty: set[int] = set()
        limit = float("inf") if ops is None else ops
        fi = blk = done = 0
        pwrite, preadv, fsync, clock = os.pwrite, os.preadv, os.fsync, time.perf_counter
        bufs = [buf]
        t0 = clock()
        deadline = t0 + duration if duration is not None else float("inf")
        try:
            while done < limit and (deadline == float("inf") or clock() < deadline):
                if seq:
                    fd, off = fds[fi], blk * block_size
                    blk += 1
                    if blk == per_file:
                        blk, fi = 0, (fi + 1) % nfiles
                else:
                    fd, off = fds[rng.randrange(nfiles)], rng.randrange(per_file) * block_size
                if (rng.random() >= read_share) if mixed else writing:
                    written_bytes += pwrite(fd, buf, off)
                    writes += 1
                    dirty.add(fd)
                    pending += 1
                    if fsync_freq and pending >= fsync_freq:
                        for d in dirty:
                            fsync(d)
                        fsyncs += len(dirty)
                        dirty.clear()
                        pending = 0
                else:
                    read_bytes += preadv(fd, bufs, off)
                    reads += 1
                done += 1
            if fsync_end and dirty:
                for d in dirty:
                    fsync(d)
                fsyncs += len(dirty)
            seconds = clock() - t0
        except OSError as exc:
            if exc.errno in _FULL_ERRNOS:
                raise _no_space(directory) from None
            if direct and exc.errno == errno.EINVAL:
                raise _no_direct(directory, f" for {block_size}-byte requests") from None
            raise
        if mode == "seqwr":
            _top_up(directory, nfiles, file_size)
    finally:
        for fd in fds:
            os.close(fd)
        buf.close()

    seconds = max(seconds, 1e-9)
    read_mib, written_mib = read_bytes / MiB, written_bytes / MiB
    out = finish(read_mib + written_mib, "MiB", seconds, mode=mode, reads=reads, writes=writes, fsyncs=fsyncs)
    out.update(
        mib_per_s=out["rate"],
        reads_per_s=reads / seconds,
        writes_per_s=writes / seconds,
        fsyncs_per_s=fsyncs / seconds,
        read_mib_per_s=read_mib / seconds,
        written_mib_per_s=written_mib / seconds,
        read_mib=read_mib,
        written_mib=written_mib,
        block_size=block_size,
        direct=bool(direct),
        directory=directory,
        fs_type=filesystem_type(directory),
    )
    return out


def _top_up(directory: str, nfiles: int, file_size: int) -> None:
    """After seqwr: bring every file back to its prepared size (untimed)."""
    chunk = bytes(range(256)) * (MiB // 256)
    try:
        for i in range(nfiles):
            fd = os.open(_file(directory, i), os.O_WRONLY)
            try:
                size = os.fstat(fd).st_size
                if size < file_size:
                    _fill(fd, size, file_size, chunk)
            finally:
                os.close(fd)
    except OSError as exc:
        if exc.errno in _FULL_ERRNOS:
            raise _no_space(directory) from None
        raise


def cleanup(directory: str | None = None) -> dict[str, Any]:
    """Remove the test files and the manifest (and the directory when it is
    the default one and ends up empty). Returns ``removed`` (file count)."""
    directory = directory or default_directory()
    removed = 0
    for path in glob.glob(os.path.join(glob.escape(directory), "test_file.*")) + [os.path.join(directory, MANIFEST)]:
        try:
            os.unlink(path)
            removed += 1
        except FileNotFoundError:
            pass
    if os.path.basename(os.path.normpath(directory)) == DIRNAME:
        try:
            os.rmdir(directory)
        except OSError:
            pass
    return {"removed": removed, "directory": directory}


def benchmark(mode: str = "rndrw", total_size: int = 16 * MiB, files: int = 4, directory: str | None = None,
              **run_options: Any) -> dict[str, Any]:
    """:func:`prepare`, :func:`run` and :func:`cleanup` in one call, for a
    test that wants one number. ``run_options`` go to :func:`run`. Returns
    what :func:`run` returns (rates in reads/s, writes/s, fsyncs/s, MiB/s)
    plus ``prepare_seconds``; the recorded work is the run's (MiB read and
    written, rate in MiB/s). The files are removed even on error.
    """
    prep = prepare(total_size=total_size, files=files, directory=directory)
    try:
        out = run(mode, directory=prep["directory"], **run_options)
    finally:
        cleanup(prep["directory"])
    out["prepare_seconds"] = prep["seconds"]
    return out
