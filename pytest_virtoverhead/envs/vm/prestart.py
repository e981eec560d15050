"""The worker's interpreter, started before the guest's start point.

A restored guest used to start the interpreter after the 9p mount: under TCG
that was 1.5-2.6 s of a 2.6-5 s start (the dynamic loader relocating
libpython, ``site``, the worker's imports, each file over 9p), paid at every
start. QEMU refuses to migrate a guest with 9p mounted, so the interpreter
cannot simply be started before the saved state is taken; but it can start
from copies of the few files it opens until the worker waits for its
channel: the executable and its shared libraries, the landmarks ``getpath``
looks for, ``site``'s ``.pth`` files and the modules they and the worker's
start import. They go into the initramfs at the same paths as on the host
(symlinks included), so ``sys.executable``, ``sys.prefix`` and ``sys.path``
come out the same. /init starts the worker there; the worker imports its
start path, says ``waiting`` and blocks; the host saves the state with it.
A restored guest then mounts the host's root as before and tells the
worker, which chroots into it (``worker.PRESTART_VAR``): every later import
and file access reads the host's files over 9p, as before.

Which files: :data:`DISCOVER` runs once on the host, with the guest's
environment, imports what the worker's start imports and lists the files
of ``sys.modules``, the mapped files of ``/proc/self/maps`` and the
landmarks. The list is cached; the initramfs is keyed on each file's size
and mtime, so an edit of the worker (or a new interpreter) gives a new
initramfs and a new saved state. If the copy is not enough (an import
fails, ``sys.path`` differs from the host's), the worker says so on the
console and /init starts the interpreter after the mount, as before.

Also here: the package's bytecode, written on the host before a boot
(:func:`precompile_package`), since the guest cannot write it.

Standard library only.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import subprocess

from ...fsutil import atomic_write
from . import elf

#: Where /init keeps the prestart's files (inside the initramfs).
PRESTART_DIR = "/vo"
CONFIG = PRESTART_DIR + "/prestart.json"
UP_FIFO = PRESTART_DIR + "/up"
UP_FD = 4
#: Changes when what the initramfs holds for the same host files changes
#: (it is part of the initramfs' key).
FORMAT = 5
#: Imported before the start point besides the worker's own start path,
#: where they exist: the ``hello`` reply needs ``clock``; every VM start
#: asks the guest for its memory right after ``hello`` (the footprint's idle
#: reading, ``footprint.guest_memory``), whose module imports dataclasses
#: and typing: ~0.5 s under TCG if imported after the start.
PREIMPORT = ("pytest_virtoverhead.guest.clock", "pytest_virtoverhead.footprint")
#: Top-level names of the initramfs itself: a host path through one of them
#: cannot be mirrored (then the interpreter starts after the mount).
RESERVED = ("bin", "dev", "proc", "sys", "newroot", "init", "modules", PRESTART_DIR.strip("/"), "fstab",
            "fstab.scratch", "mount.err")
#: Mapped files never copied (kernel and anonymous objects).
SKIP_PREFIXES = ("/dev/", "/proc/", "/sys/", "/memfd:", "/run/", "/tmp/", "/SYSV")

#: Run on the host (``python -c``) with the guest's environment, from "/":
#: prints the files and facts the guest's prestart needs as JSON.
DISCOVER = r"""
import json, os, sys
base_path = list(sys.path)
import runpy, signal, termios, tty
import pytest_virtoverhead.guest.worker, pytest_virtoverhead.guest.children, pytest_virtoverhead.wire.protocol
import pytest_virtoverhead.guest.vmguest
for name in sys.argv[1:]:
    try:
        __import__(name)
    except ImportError:
        pass
files = set()
for mod in list(sys.modules.values()):
    for attr in ("__file__",):
        path = getattr(mod, attr, None)
        if isinstance(path, str) and os.path.isabs(path):
            files.add(path)
    spec = getattr(mod, "__spec__", None)
    cached = getattr(spec, "cached", None) if spec is not None else None
    if isinstance(cached, str) and os.path.isfile(cached):
        files.add(cached)
with open("/proc/self/maps") as f:
    for line in f:
        parts = line.split(None, 5)
        if len(parts) == 6 and parts[5].startswith("/") and not parts[5].rstrip().endswith("(deleted)"):
            files.add(parts[5].rstrip("\n"))
import site
sitedirs = list(site.getsitepackages())
if site.ENABLE_USER_SITE and site.USER_SITE:
    sitedirs.append(site.USER_SITE)
for d in sitedirs:
    try:
        names = os.listdir(d)
    except OSError:
        continue
    files.update(os.path.join(d, n) for n in names if n.endswith(".pth"))
ver = "python%d.%d" % sys.version_info[:2]
for p in (os.path.join(sys.base_prefix, "lib", ver, "os.py"), os.path.join(sys.prefix, "pyvenv.cfg"),
          os.path.join(os.path.dirname(os.path.dirname(sys.executable)), "pyvenv.cfg"),
          os.path.join(os.path.dirname(sys.executable), "pyvenv.cfg"), "/etc/ld.so.cache", "/etc/ld.so.preload",
          sys.executable):
    if os.path.lexists(p):
        files.add(p)
for path in [p for p in files if ".so" in os.path.basename(p)]:
    # the names the loader asks for (libffi.so.8) are symlinks to the mapped file (libffi.so.8.1.2)
    d, base = os.path.split(path)
    stem = base.split(".so")[0] + ".so"
    try:
        names = os.listdir(d)
    except OSError:
        continue
    for n in names:
        if n.startswith(stem) and n != base and os.path.islink(os.path.join(d, n)) \
                and os.path.realpath(os.path.join(d, n)) == os.path.realpath(path):
            files.add(os.path.join(d, n))
for name in os.listdir("/"):  # /lib -> usr/lib (merged /usr): the paths ld.so.cache names
    if name.startswith("lib") and os.path.islink("/" + name) and os.path.exists("/" + name):
        files.add("/" + name)
import struct
with open(os.path.realpath(sys.executable), "rb") as f:  # the ELF interpreter, as the executable names it
    head = f.read(65536)
if head[:4] == b"\x7fELF" and head[4] == 2:
    phoff = struct.unpack_from("<Q", head, 0x20)[0]
    phentsize, phnum = struct.unpack_from("<HH", head, 0x36)
    for i in range(phnum):
        off = phoff + i * phentsize
        if off + 40 <= len(head) and struct.unpack_from("<I", head, off)[0] == 3:
            start, size = struct.unpack_from("<Q", head, off + 8)[0], struct.unpack_from("<Q", head, off + 32)[0]
            files.add(head[start:start + size].rstrip(b"\0").decode())
dirs = [p for p in [os.path.join(sys.base_exec_prefix, "lib", ver, "lib-dynload"), *base_path] if p and os.path.isdir(p)]
json.dump({"files": sorted(files), "dirs": dirs, "sys_path": base_path[1:], "executable": sys.executable,
           "prefix": sys.prefix, "modules": sorted(sys.modules)}, sys.stdout)
"""


class Unsupported(Exception):
    """The interpreter's start files cannot be mirrored into the initramfs."""


def _package_stamp() -> str:
    """Sizes and mtimes of this package's top-level modules (the worker's
    start path is among them): a new stamp means a new discovery."""
    package = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    parts = []
    for name in sorted(os.listdir(package)):
        if name.endswith(".py"):
            st = os.stat(os.path.join(package, name))
            parts.append(f"{name}:{st.st_size}:{st.st_mtime_ns}")
    return ";".join(parts)


def discover(python: str, env: dict[str, str], cache_dir: str, preimport: tuple[str, ...] = PREIMPORT) -> dict:
    """The prestart's file list for ``python`` in ``env`` (cached in
    ``cache_dir``; ~0.1 s on the host when it is not)."""
    try:
        st = os.stat(python)
    except OSError as exc:
        raise Unsupported(f"cannot stat {python}: {exc}") from None
    key_src = json.dumps([python, os.path.realpath(python), st.st_size, st.st_mtime_ns, sorted(env.items()),
                          list(preimport), _package_stamp(), DISCOVER])
    key = hashlib.sha256(key_src.encode()).hexdigest()[:16]
    path = os.path.join(cache_dir, "prestart", f"files-{key}.json")
    try:
        with open(path) as f:
            found = json.load(f)
        if all(os.path.lexists(p) for p in found["files"]):
            return found
    except (OSError, ValueError, KeyError):
        pass
    try:
        proc = subprocess.run([python, "-c", DISCOVER, *preimport], env=env, cwd="/", stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise Unsupported(f"cannot run {python} to list its start files: {exc}") from None
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or ["(no output)"]
        raise Unsupported(f"listing the interpreter's start files failed: {tail[0]}")
    try:
        found = json.loads(proc.stdout)
    except ValueError:
        raise Unsupported("listing the interpreter's start files printed no JSON") from None
    found["preimport"] = list(preimport)
    atomic_write(path, json.dumps(found))
    return found


class Tree:
    """Host paths mirrored into the initramfs: directories, symlinks (as
    symlinks, their targets mirrored too) and regular files."""

    def __init__(self) -> None:
        self.entries: dict[str, tuple[str, str]] = {}  # relative path -> (kind, symlink target or host path)

    def add(self, path: str, depth: int = 0) -> None:
        if depth > 40:
            raise Unsupported(f"too many symlinks resolving {path}")
        if not os.path.isabs(path):
            raise Unsupported(f"not an absolute path: {path}")
        parts = [p for p in os.path.normpath(path).split("/") if p]
        if not parts:
            return
        if parts[0] in RESERVED:
            raise Unsupported(f"{path} is under /{parts[0]}, which the initramfs itself uses")
        cur = ""
        for i, comp in enumerate(parts):
            cur = f"{cur}/{comp}"
            try:
                st = os.lstat(cur)
            except OSError as exc:
                raise Unsupported(f"cannot stat {cur}: {exc}") from None
            rel = cur[1:]
            if stat.S_ISLNK(st.st_mode):
                target = os.readlink(cur)
                self.entries[rel] = ("symlink", target)
                resolved = os.path.normpath(os.path.join(os.path.dirname(cur), target))
                rest = "/".join(parts[i + 1:])
                self.add(os.path.join(resolved, rest) if rest else resolved, depth + 1)
                return
            if stat.S_ISDIR(st.st_mode):
                self.entries.setdefault(rel, ("dir", ""))
            elif stat.S_ISREG(st.st_mode):
                if i != len(parts) - 1:
                    raise Unsupported(f"{cur} is a file, not a directory")
                self.entries[rel] = ("file", cur)
            else:
                raise Unsupported(f"{cur} is neither a file, a directory nor a symlink")

    def stamp(self) -> str:
        """Sizes and mtimes of the files: part of the initramfs' key."""
        out = []
        for rel, (kind, what) in sorted(self.entries.items()):
            if kind == "file":
                st = os.stat(what)
                out.append(f"{rel}:{st.st_size}:{st.st_mtime_ns}")
            else:
                out.append(f"{rel}:{kind}:{what}")
        return "\n".join(out)

    def write(self, cpio) -> int:
        """Add the entries to a CpioWriter (parents first); return the bytes of file data."""
        total = 0
        for rel, (kind, what) in sorted(self.entries.items(), key=lambda kv: (kv[0].count("/"), kv[0])):
            if kind == "dir":
                cpio.dir(rel)
            elif kind == "symlink":
                cpio.symlink(rel, what)
            else:
                with open(what, "rb") as f:
                    data = loaded_part(f.read())
                mode = os.stat(what).st_mode & 0o777
                cpio.file(rel, data, mode)
                total += len(data)
        return total


def loaded_part(data: bytes) -> bytes:
    """An ELF file (64-bit, little-endian) without what the dynamic loader
    never reads: everything after its last segment (debug sections, the
    symbol table, the section headers; 17 of libpython's 23 MB here), with
    the header saying it has no section headers. Every byte the loader maps
    is the host's. The initramfs holds this copy twice in the guest's
    memory (the unpacked file and the freed archive, which is not zeroed),
    and the saved state holds all of it. Other data unchanged."""
    import struct

    if len(data) < 64 or not elf.is_elf64_le(data):
        return data
    phoff, phentsize, phnum = elf.header_table(data)
    end = phoff + phentsize * phnum
    if not phnum or end > len(data):
        return data
    for seg in elf.program_headers(io.BytesIO(data)):
        end = max(end, seg.offset + seg.filesz)
    if end >= len(data):
        return data
    head = bytearray(data[:end])
    struct.pack_into("<Q", head, 0x28, 0)  # e_shoff
    struct.pack_into("<HH", head, 0x3C, 0, 0)  # e_shnum, e_shstrndx
    return bytes(head)


def precompile_package() -> str:
    """Write this package's missing or stale bytecode (``__pycache__``) on
    the host, where it takes ~60 ms once and ~1 ms after.

    The guest cannot write bytecode (its root is the host's, read-only), so
    without it every boot compiles the worker's modules from source under
    emulation, and every test session the plugin's: ~0.3 s of a TCG boot
    here (benchmarks/harness.py, docs/performance.md). Python writes these
    files itself on import unless PYTHONDONTWRITEBYTECODE is set; only this
    package's own directory is touched, never the user's code.
    """
    import compileall

    package = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if not os.access(package, os.W_OK):
        return f"not written: {package} is read-only"
    try:
        ok = compileall.compile_dir(package, quiet=2, workers=1)
    except OSError as exc:
        return f"not written: {exc}"
    return "present" if ok else "partly written (a module does not compile)"


def tree_for(found: dict) -> Tree:
    tree = Tree()
    for path in found["files"]:
        if path.startswith(SKIP_PREFIXES):
            continue
        tree.add(path)
    for path in found["dirs"]:
        tree.add(path)
    return tree


def config(found: dict, root: str, marker: str, scratch_mount: str) -> dict:
    """What the guest's worker reads from :data:`CONFIG`: where to chroot,
    the start-point marker, /init's fstabs (see :mod:`pytest_virtoverhead.guest.vmguest`)."""
    return {"format": FORMAT, "root": root, "fd": UP_FD, "sys_path": found["sys_path"],
            "executable": found["executable"], "preimport": found.get("preimport", list(PREIMPORT)),
            "marker": marker, "fstab": "/fstab", "fstab_scratch": "/fstab.scratch", "scratch_mount": scratch_mount}
