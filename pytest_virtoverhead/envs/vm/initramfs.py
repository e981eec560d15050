"""The guest's initramfs: busybox-static, a few kernel modules and /init.

The init script loads the virtio, 9p and ext4 modules (in dependency order,
read from the kernel's own ``modules.dep``), mounts the host's root read-only
over 9p, mounts fresh /dev, /proc, /sys, /tmp, /run and the scratch disk
inside it, chroots there and runs the host's own interpreter as the worker on
the second serial port (``/dev/ttyS1``). When the worker exits the guest
powers off, which ends the (transient) libvirt domain.

The archive (``newc`` cpio, uncompressed: the guest unpacks it fastest) is
written in pure Python, so no root is needed for the device nodes, and cached
in the cache directory keyed on its inputs. Standard library only.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import lzma
import os
import shlex
import stat
from dataclasses import dataclass, field

from ...fsutil import atomic_write, prune
from ..errors import EnvUnavailable
from . import elf, prestart as ps

#: What the guest needs, by module name: virtio PCI transport, the 9p root,
#: the scratch disk and its ext4 file system. Dependencies are added from
#: modules.dep; names missing from modules.dep must be built in.
WANTED_MODULES = ("virtio_pci", "9pnet_virtio", "9p", "virtio_blk", "crc32c_generic", "ext4")
#: Modules whose absence is fatal (the others may be built in, or optional).
REQUIRED = {"9pnet_virtio": "CONFIG_NET_9P_VIRTIO", "9p": "CONFIG_9P_FS",
            "virtio_pci": "CONFIG_VIRTIO_PCI", "virtio_blk": "CONFIG_VIRTIO_BLK", "ext4": "CONFIG_EXT4_FS"}
BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox", "/sbin/busybox", "/usr/lib/initramfs-tools/bin/busybox")
INIT_TAG = "virtoverhead-init"
SCRATCH_MOUNT = "/run/virtoverhead/scratch"
#: The guest's writable temporary directory (tmpfs; TMPDIR points there). The
#: host's /tmp stays visible, read-only, like the rest of the host's files.
GUEST_TMP = "/run/virtoverhead/tmp"
WORKER_DEVICE = "/dev/ttyS1"
#: Where /init prepares the worker's /run before the start point (bound there after it).
RUN_STAGE = "/run.guest"
#: Written by /init on the worker's line when the guest waits for the host's
#: "go" line (the point where a snapshot can be taken).
START_POINT = "virtoverhead-start-point"
#: The worker's environment variable naming its prestart configuration
#: (``worker.PRESTART_VAR``: the same name).
PRESTART_VAR = "VIRTOVERHEAD_PRESTART"
#: Written by the KVM probe's /init on the console: user space was reached.
PROBE_MARKER = "virtoverhead-probe: user space reached"


MODULE_SUFFIXES = (".ko.xz", ".ko.gz", ".ko.zst", ".ko")


def module_name(path: str) -> str:
    # (called for every name in modules.dep, ~14000 here, at every VM start:
    # kept to plain string operations)
    base = path[path.rfind("/") + 1:]
    if base.endswith(MODULE_SUFFIXES):
        base = base[:base.rfind(".ko")]
    return base.replace("-", "_")


def parse_modules_dep(text: str) -> dict[str, tuple[str, list[str]]]:
    """``modules.dep`` -> {name: (relative path, [dependency names])}."""
    out: dict[str, tuple[str, list[str]]] = {}
    for line in text.splitlines():
        if ":" not in line:
            continue
        path, _, deps = line.partition(":")
        path = path.strip()
        if not path:
            continue
        out[module_name(path)] = (path, [module_name(d) for d in deps.split()])
    return out


def load_order(dep: dict[str, tuple[str, list[str]]], wanted: tuple[str, ...] | list[str]) -> list[str]:
    """Module names to insmod, each after all of its dependencies.

    Names in ``wanted`` that modules.dep does not list are skipped (built
    in); the caller checks the required ones. Order among independent
    modules follows ``wanted``.
    """
    order: list[str] = []
    state: dict[str, int] = {}  # 1 = visiting, 2 = done

    def visit(name: str, chain: tuple[str, ...]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            raise ValueError(f"module dependency cycle: {' -> '.join(chain + (name,))}")
        if name not in dep:
            return
        state[name] = 1
        for d in dep[name][1]:
            visit(d, chain + (name,))
        state[name] = 2
        order.append(name)

    for name in wanted:
        visit(name.replace("-", "_"), ())
    return order


def builtin_modules(modules_dir: str) -> set[str]:
    try:
        with open(os.path.join(modules_dir, "modules.builtin")) as f:
            return {module_name(line.strip()) for line in f if line.strip()}
    except OSError:
        return set()


def read_module(path: str) -> bytes:
    with open(path, "rb") as f:
        data = f.read()
    if path.endswith(".xz"):
        return lzma.decompress(data)
    if path.endswith(".gz"):
        return gzip.decompress(data)
    if path.endswith(".zst"):
        raise EnvUnavailable(f"guest kernel module {path} is zstd-compressed, which this Python cannot "
                             "decompress; pass a kernel with uncompressed or xz modules (--virt-vm-kernel)")
    return data


@dataclass
class InitConfig:
    """What /init does, per interpreter and project (not per session)."""

    python: str
    env: dict[str, str] = field(default_factory=dict)
    msize: int = 512 * 1024
    cache9p: str = "loose"
    scratch_env: str = "VIRTOVERHEAD_SCRATCH"
    #: Start the worker's interpreter before the start point from the
    #: initramfs' copy of its start files (see :mod:`.prestart`).
    prestart: bool = False


def init_script(modules: list[str], cfg: InitConfig) -> str:
    q = shlex.quote
    env = {**cfg.env, cfg.scratch_env: SCRATCH_MOUNT, "TMPDIR": GUEST_TMP}
    env_args = " ".join(q(f"{k}={v}") for k, v in sorted(env.items()))
    insmods = "\n".join(f"insmod /modules/{q(m)}.ko || fail 'cannot load module {m}'" for m in modules)
    opts = f"trans=virtio,version=9p2000.L,ro,msize={cfg.msize}"
    if cfg.cache9p and cfg.cache9p != "none":
        opts += f",cache={cfg.cache9p}"
    # The working directory comes with the host's "go" line (hex), after
    # the start point: the script, the initramfs and a saved state are the
    # same for every project directory.
    worker = " ".join(q(a) for a in [cfg.python, "-m", "pytest_virtoverhead.guest.worker",
                                      "--device", WORKER_DEVICE]) + ' --cwd-hex "$cwdhex"'
    prestarted = " ".join(q(a) for a in [cfg.python, "-m", "pytest_virtoverhead.guest.worker",
                                          "--device", WORKER_DEVICE])
    run_dirs = " ".join(RUN_STAGE + d[len("/run"):] for d in (SCRATCH_MOUNT, GUEST_TMP))
    fstab = [f"hostroot /newroot 9p {opts} 0 0",
             "devtmpfs /newroot/dev devtmpfs defaults 0 0",
             "tmpfs /newroot/dev/shm tmpfs mode=1777 0 0",
             "devpts /newroot/dev/pts devpts defaults 0 0",
             "proc /newroot/proc proc defaults 0 0",
             "sysfs /newroot/sys sysfs defaults 0 0",
             f"{RUN_STAGE} /newroot/run none bind 0 0"]
    scratch = f"/dev/vda /newroot{SCRATCH_MOUNT} ext4 noatime 0 0"
    prestart = ""
    if cfg.prestart:
        prestart = f"""# The worker's interpreter starts now, from the initramfs' copy of the
# files it opens until it waits (the host's paths, so sys.executable, sys.prefix and
# sys.path are the host's): it imports its start path and says "waiting" on
# {ps.UP_FIFO}. Then it meets the host at the start point itself and is saved
# with the guest; after a restore it does what the lines below the start
# point do (pytest_virtoverhead/vmguest.py) and chroots into the host's root.
# If it cannot start here (it says why on the console), the shell goes on.
mkfifo {ps.UP_FIFO}
env -i {env_args} {PRESTART_VAR}={ps.CONFIG} {prestarted} {ps.UP_FD}>{ps.UP_FIFO} &
W=$!
read -r up < {ps.UP_FIFO}
if [ "$up" = waiting ]; then
    wait $W
    say "worker exited with status $?"
    poweroff -f
    sleep 5
fi
wait $W
say "no prestarted interpreter ($up)"
"""
    fstabs = (f"printf '%s\\n' {' '.join(q(x) for x in fstab)} > /fstab\n"
              f"printf '%s\\n' {' '.join(q(x) for x in fstab + [scratch])} > /fstab.scratch")
    return f"""#!/bin/busybox sh
# pytest-virtoverhead guest init (generated)
/bin/busybox --install -s /bin
export PATH=/bin
say() {{ read up _ < /proc/uptime; echo "{INIT_TAG}: [$up] $*"; }}
fail() {{ say "FAILED: $*"; poweroff -f; sleep 5; }}
mount -t devtmpfs devtmpfs /dev
mount -t proc proc /proc
mount -t sysfs sysfs /sys
say "loading modules"
{insmods}
hostname virtoverhead-guest
ifconfig lo 127.0.0.1 up 2>/dev/null
# The worker's serial line: at the default 9600 baud the UART's receive
# timeout (4 character times) adds ~4 ms to every message; 115200 cuts it
# to ~0.35 ms. The kernel keeps the setting for the worker's open.
stty -F {WORKER_DEVICE} 115200 raw -echo 2>/dev/null
# The file systems the worker sees, mounted after the start point by one
# `mount -a` (each mount command is an exec of busybox, ~15-30 ms under
# TCG). What does not depend on the host's files is made here, so it is in
# the saved state: /dev/shm and /dev/pts (on the one devtmpfs, which the
# worker's /dev shows too) and the tmpfs that becomes its /run, with the
# scratch disk's mount point and the guest's TMPDIR.
mkdir -p /dev/shm /dev/pts {RUN_STAGE}
mount -t tmpfs -o mode=0755 tmpfs {RUN_STAGE}
mkdir -p {run_dirs}
chmod 1777 {RUN_STAGE}{GUEST_TMP[len("/run"):]}
{fstabs}
{prestart}# The start point: everything above is the same for every session, so the
# host may save the guest's state here (QEMU refuses to migrate a guest with
# 9p mounted) and later sessions restore it instead of booting. The host
# answers "go <epoch seconds> <random hex>": the wall clock and fresh
# entropy, which a restored guest would otherwise share with its snapshot.
# (One open file for both: a serial port that is closed drops what arrives.)
exec 3<>{WORKER_DEVICE}
echo "{START_POINT}" >&3
read -r word epoch seed cwdhex <&3 || fail 'no start line from the host'
exec 3>&-
[ "$word" = go ] || fail "unexpected start line from the host: $word"
date -u -s "@$epoch" >/dev/null 2>&1
echo "$seed" > /dev/urandom
# A restored guest read the partition table of another session's scratch
# disk: forget those blocks.
[ -b /dev/vda ] && blockdev --flushbufs /dev/vda
say "mounting the host root (9p, read-only)"
R=/newroot
F=/fstab
[ -b /dev/vda ] && F=/fstab.scratch
# The host root over 9p (read-only), /dev, /dev/shm, /dev/pts, /proc, /sys,
# /run and the scratch disk, in that order; /dev/pts may fail.
if ! mount -a -i -T $F 2>/mount.err; then
    grep -q -v ' /newroot/dev/pts' /mount.err && fail "cannot mount the guest's file systems ($F): $(cat /mount.err)"
fi
if [ -b /dev/vda ]; then
    chmod 1777 $R{SCRATCH_MOUNT}
else
    say "no scratch disk"
fi
say "starting worker"
env -i {env_args} /bin/busybox chroot $R {worker}
say "worker exited with status $?"
poweroff -f
sleep 5
"""


class CpioWriter:
    """A minimal ``newc`` cpio archive writer."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.ino = 1

    def _entry(self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)) -> None:
        name_b = name.encode() + b"\0"
        fields = [self.ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(name_b), 0]
        self.ino += 1
        header = b"070701" + b"".join(b"%08X" % v for v in fields)
        self.parts.append(header + name_b)
        self.parts.append(b"\0" * (-(len(header) + len(name_b)) % 4))
        self.parts.append(data)
        self.parts.append(b"\0" * (-len(data) % 4))

    def dir(self, name: str) -> None:
        self._entry(name, stat.S_IFDIR | 0o755)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self._entry(name, stat.S_IFREG | mode, data)

    def symlink(self, name: str, target: str) -> None:
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def chardev(self, name: str, major: int, minor: int, mode: int = 0o600) -> None:
        self._entry(name, stat.S_IFCHR | mode, rdev=(major, minor))

    def finish(self) -> bytes:
        self._entry("TRAILER!!!", 0)
        data = b"".join(self.parts)
        return data + b"\0" * (-len(data) % 512)


def find_busybox() -> str:
    for path in BUSYBOX_CANDIDATES:
        if os.path.isfile(path):
            return path
    raise EnvUnavailable("no busybox for the guest's initramfs: install busybox-static "
                         "(`apt-get install busybox-static`)")


def _is_static(path: str) -> bool:
    """Is ``path`` an ELF executable without a program interpreter?"""
    with open(path, "rb") as f:
        if f.read(4) != elf.MAGIC:
            return False
        return not any(seg.type == elf.PT_INTERP for seg in elf.program_headers(f))


def _static_busybox(busybox: str | None) -> str:
    """``busybox`` (default: the host's), or EnvUnavailable if it is not static."""
    busybox = busybox or find_busybox()
    if not _is_static(busybox):
        raise EnvUnavailable(f"{busybox} is dynamically linked; the guest needs a static busybox "
                             "(`apt-get install busybox-static`)")
    return busybox


def build(modules_dir: str, cfg: InitConfig, cache_dir: str, busybox: str | None = None,
          wanted: tuple[str, ...] = WANTED_MODULES, prestart_tree=None,
          prestart_config: dict | None = None) -> tuple[str, list[str]]:
    """Return (path of the cached initramfs, modules it loads in order).

    With ``cfg.prestart``, ``prestart_tree`` (a :class:`.prestart.Tree`) is
    copied in and ``prestart_config`` written as the worker's configuration."""
    busybox = _static_busybox(busybox)
    try:
        with open(os.path.join(modules_dir, "modules.dep")) as f:
            dep = parse_modules_dep(f.read())
    except OSError as exc:
        raise EnvUnavailable(f"cannot read {modules_dir}/modules.dep ({exc}); run `depmod` for the guest "
                             "kernel or pass its modules directory as the vm option `modules`") from None
    builtin = builtin_modules(modules_dir)
    for name, config in REQUIRED.items():
        if name not in dep and name not in builtin:
            raise EnvUnavailable(f"the guest kernel in {modules_dir} has no {name} ({config}); "
                                 "use a distribution kernel such as Debian's linux-image-amd64")
    order = load_order(dep, wanted)
    script = init_script(order, cfg)
    st = os.stat(busybox)
    key_src = "\n".join([script, busybox, str(st.st_size), str(st.st_mtime_ns), modules_dir,
                         *(f"{dep[m][0]}:{os.stat(os.path.join(modules_dir, dep[m][0])).st_mtime_ns}" for m in order)])
    if cfg.prestart:
        key_src += "\n" + json.dumps(prestart_config, sort_keys=True) + "\n" + prestart_tree.stamp()
    key = hashlib.sha256(key_src.encode()).hexdigest()[:16]
    target = os.path.join(cache_dir, "initramfs", f"initramfs-{os.path.basename(modules_dir.rstrip('/'))}-{key}.cpio")
    if os.path.isfile(target):
        try:
            os.utime(target)  # recently used: kept by prune
        except OSError:
            pass
        return target, order
    w = CpioWriter()
    for d in ("bin", "dev", "proc", "sys", "newroot", "modules"):
        w.dir(d)
    w.chardev("dev/console", 5, 1)
    w.chardev("dev/null", 1, 3, 0o666)
    with open(busybox, "rb") as f:
        w.file("bin/busybox", f.read(), 0o755)
    w.symlink("bin/sh", "busybox")
    for m in order:
        w.file(f"modules/{m}.ko", read_module(os.path.join(modules_dir, dep[m][0])))
    if cfg.prestart:
        w.dir("vo")
        w.file("vo/prestart.json", json.dumps(prestart_config).encode())
        prestart_tree.write(w)
    w.file("init", script.encode(), 0o755)
    atomic_write(target, w.finish())  # no partial file, nor a temporary one left on error
    prune(os.path.dirname(target), lambda n: n.startswith("initramfs-") and n.endswith(".cpio"), KEEP, keep=target)
    return target, order


#: Initramfs files kept per cache (each project root and interpreter has its
#: own, and with the prestart's files each is ~12 MB): the newest are kept.
KEEP = 8


def probe_script() -> str:
    """/init of the KVM probe: one line on the console, then power off. It
    runs before any module loads, so it proves that the kernel booted to
    user space under this acceleration and nothing more."""
    return f"""#!/bin/busybox sh
/bin/busybox echo "{PROBE_MARKER}"
/bin/busybox poweroff -f
/bin/busybox sleep 5
"""


def build_probe(cache_dir: str, busybox: str | None = None) -> str:
    """The cached initramfs of the KVM probe (busybox and its /init only)."""
    busybox = _static_busybox(busybox)
    script = probe_script()
    st = os.stat(busybox)
    key = hashlib.sha256("\n".join([script, busybox, str(st.st_size), str(st.st_mtime_ns)]).encode()).hexdigest()[:16]
    target = os.path.join(cache_dir, "initramfs", f"probe-{key}.cpio")
    if os.path.isfile(target):
        return target
    w = CpioWriter()
    for d in ("bin", "dev"):
        w.dir(d)
    w.chardev("dev/console", 5, 1)
    with open(busybox, "rb") as f:
        w.file("bin/busybox", f.read(), 0o755)
    w.file("init", script.encode(), 0o755)
    atomic_write(target, w.finish())  # no partial file, nor a temporary one left on error
    return target
