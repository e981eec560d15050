"""A VM guest's start point, handled by the prestarted worker itself
(:func:`prestart`: the worker's wait there and its chroot after it).

When /init starts the worker before the guest's start point (see
envs/vm/prestart.py), the worker, not the shell, meets the host there: it
writes the start-point marker on its serial line, is saved with the guest,
and after a restore reads the host's ``go <epoch seconds> <random hex>``
line, sets the clock, mixes the entropy into the kernel's pool, drops the
scratch disk's stale buffers and mounts the worker's file systems from the
fstab /init wrote (the host root over 9p, /dev, /proc, /sys, /run, the
scratch disk), then the worker chroots into the host's root. Each of these
was an exec of busybox in the shell, and a restored TCG guest translates
every program's code afresh: done in this process they cost a few system
calls. The console lines (``virtoverhead-init: [uptime] ...``) are the
shell's, so the host's phases and failure messages read the same.

Standard library only; imported only by a prestarted worker (before the
start point, so its imports are in the saved state).
"""

from __future__ import annotations

import ctypes
import fcntl
import importlib
import os
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

INIT_TAG = "virtoverhead-init"
#: mount(2) flags by fstab option; other options are passed as data.
FLAGS = {"ro": 1, "nosuid": 2, "nodev": 4, "noexec": 8, "noatime": 1024, "bind": 4096, "rw": 0, "defaults": 0}
BLKFLSBUF = 0x1261
SCRATCH_DEVICE = "/dev/vda"

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = (ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p)


def say(text: str) -> None:
    with open("/proc/uptime") as f:
        up = f.read().split()[0]
    os.write(2, f"{INIT_TAG}: [{up}] {text}\n".encode())


def fail(text: str) -> None:
    say(f"FAILED: {text}")
    os._exit(1)


def mount(source: str, target: str, fstype: str, options: str) -> None:
    flags, data = 0, []
    for opt in options.split(","):
        if opt in FLAGS:
            flags |= FLAGS[opt]
        elif opt:
            data.append(opt)
    if _libc.mount(source.encode(), target.encode(), fstype.encode(), flags,
                   ",".join(data).encode() if data else None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {source} on {target} ({fstype}): {os.strerror(err)}")


def start_point(marker: str, read, write, fstab: str, scratch_fstab: str, scratch_mount: str) -> str | None:
    """Meet the host at the start point, then mount what the worker sees
    under /newroot (the caller chroots there). Returns the working
    directory the host sent with its "go" line (None: it sent none)."""
    write(marker.encode() + b"\n")
    line = bytearray()
    while not line.endswith(b"\n"):
        byte = read(1)
        if not byte:
            fail("no start line from the host")
        line += byte
    words = line.decode("ascii", "replace").split()
    if len(words) not in (3, 4) or words[0] != "go":
        fail(f"unexpected start line from the host: {line[:40]!r}")
    try:
        time.clock_settime(time.CLOCK_REALTIME, float(words[1]))
    except (OSError, ValueError):
        pass
    try:
        with open("/dev/urandom", "w") as f:
            f.write(words[2] + "\n")
    except OSError:
        pass
    scratch = os.path.exists(SCRATCH_DEVICE)
    if scratch:
        # A restored guest read the partition table of another session's
        # scratch disk: forget those blocks.
        try:
            fd = os.open(SCRATCH_DEVICE, os.O_RDONLY)
            try:
                fcntl.ioctl(fd, BLKFLSBUF)
            finally:
                os.close(fd)
        except OSError:
            pass
    say("mounting the host root (9p, read-only)")
    with open(scratch_fstab if scratch else fstab) as f:
        entries = [ln.split() for ln in f if ln.strip()]
    for source, target, fstype, options, *_ in entries:
        try:
            mount(source, target, fstype, options)
        except OSError as exc:
            if not target.endswith("/dev/pts"):
                fail(f"cannot mount the guest's file systems: {exc}")
    if scratch:
        os.chmod("/newroot" + scratch_mount, 0o1777)
    else:
        say("no scratch disk")
    say("starting worker")
    sys.stderr.flush()
    try:
        return bytes.fromhex(words[3]).decode() if len(words) == 4 else None
    except ValueError:
        fail(f"unreadable working directory on the start line: {words[3][:40]!r}")
        return None


def prestart(config_path: str, read: Callable[[int], bytes], write: Callable[[bytes], Any]) -> str | None:
    """Wait, with the worker's start path imported, until /init has mounted
    the host's root, then chroot into it (a VM guest's prestarted worker).

    Before the guest's start point this process runs from the initramfs'
    copy of the host files it opened so far; it checks that its sys.path is
    the host's, imports what the ``hello`` reply needs, tells /init it waits
    (a line on the file descriptor ``fd``) and meets the host at the start
    point on its serial line (:func:`start_point`: the host saves the guest
    there, and after a restore sends the clock and entropy; the mounts
    follow). After the chroot every import and file access reads the
    host's files, as a worker started after the mounts would."""
    import json
    import signal

    # /init started this process in the background, where a shell ignores
    # SIGINT and SIGQUIT (and the worker processes it spawns would inherit
    # that): restore what a worker started in the foreground has.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)
    with open(config_path) as f:
        cfg = json.load(f)
    up = int(cfg["fd"])
    # sys.path[0] is the directory -m ran from ("/" here and in a chroot start).
    if sys.path[1:] != cfg["sys_path"] or sys.executable != cfg["executable"]:
        os.write(up, f"sys.path or sys.executable differ from the host's: {sys.path[1:]} {sys.executable}\n"
                 .encode())
        os._exit(3)
    for name in cfg.get("preimport", ()):
        try:
            importlib.import_module(name)
        except ImportError:
            pass  # imported after the start, if at all
    os.write(up, b"waiting\n")
    os.close(up)
    cwd = start_point(cfg["marker"], read, write, cfg["fstab"], cfg["fstab_scratch"], cfg["scratch_mount"])
    os.chroot(cfg["root"])
    os.chdir("/")
    # Finders and their directory listings were made from the initramfs' copy.
    sys.path_importer_cache.clear()
    importlib.invalidate_caches()
    return cwd
