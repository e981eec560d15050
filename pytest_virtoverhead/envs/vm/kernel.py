"""Guest kernel discovery and fast-boot image extraction.

Under QEMU TCG most of a boot is spent by the guest decompressing its own
kernel. A bzImage carries the kernel's ELF image as a compressed payload; we
extract that payload once on the host (Python's ``lzma``/``zlib``), cache it,
and boot the ELF directly through its PVH entry point (a ``Xen`` ELF note of
type ``XEN_ELFNOTE_PHYS32_ENTRY``). Kernels without that note, or compressed
with an algorithm the standard library lacks, boot from the bzImage as is.

Imports nothing outside the standard library.
"""

from __future__ import annotations

import hashlib
import io
import lzma
import os
import platform
import re
import struct
import zlib
from dataclasses import dataclass

from ...fsutil import atomic_write
from ..errors import EnvUnavailable
from . import elf as elf_mod

XEN_ELFNOTE_PHYS32_ENTRY = 18
HOW_TO_GET_KERNEL = (
    "install a guest kernel (Debian/Ubuntu: `apt-get install linux-image-amd64` "
    "or `linux-image-generic`) or pass --virt-vm-kernel=PATH (with a matching "
    "modules directory as the vm option `modules`)"
)


@dataclass(frozen=True)
class GuestKernel:
    """A bootable kernel image and its modules directory."""

    path: str  # the bzImage (vmlinuz) as found
    version: str  # "6.1.0-56-amd64"
    modules_dir: str  # /lib/modules/<version>
    source: str  # how it was chosen: "option", "host", "newest"


# --------------------------------------------------------------------------
# discovery


def _version_from_name(path: str) -> str | None:
    m = re.match(r"(?:vmlinuz|bzImage|vmlinux)-(.+)$", os.path.basename(path))
    return m.group(1) if m else None


def _version_from_image(path: str) -> str | None:
    """The kernel version string stored in a bzImage's setup header."""
    try:
        with open(path, "rb") as f:
            head = f.read(0x10400)
    except OSError:
        return None
    if len(head) < 0x210 or head[0x202:0x206] != b"HdrS":
        return None
    (offset,) = struct.unpack_from("<H", head, 0x20E)
    start = offset + 0x200
    if not offset or start >= len(head):
        return None
    raw = head[start:start + 256].split(b"\0", 1)[0].decode("ascii", "replace")
    return raw.split(" ", 1)[0] or None


def _sort_key(version: str) -> list:
    return [(0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"[.\-+~]", version)]


def discover(kernel: str | None = None, modules: str | None = None, boot_dir: str = "/boot",
             modules_root: str = "/lib/modules", host_release: str | None = None) -> GuestKernel:
    """Choose the guest kernel, or raise :class:`EnvUnavailable` saying how to get one.

    Order: the ``kernel`` option (with ``modules``, or /lib/modules/<its
    version>); the host's running kernel under ``boot_dir`` with its modules;
    the newest ``boot_dir/vmlinuz-*`` that has ``modules_root/<version>``.
    """
    if kernel:
        path = os.path.abspath(os.path.expanduser(kernel))
        if not os.path.isfile(path):
            raise EnvUnavailable(f"guest kernel {kernel!r} (vm option kernel / --virt-vm-kernel) does not exist; "
                                 + HOW_TO_GET_KERNEL)
        if not os.access(path, os.R_OK):
            raise EnvUnavailable(f"guest kernel {path} is not readable by this user; "
                                 "fix its permissions or pass another --virt-vm-kernel")
        version = _version_from_name(path) or _version_from_image(path)
        if modules:
            mdir = os.path.abspath(os.path.expanduser(modules))
        elif version:
            mdir = os.path.join(modules_root, version)
        else:
            raise EnvUnavailable(f"cannot tell the version of guest kernel {path}; "
                                 "name its modules directory with the vm option `modules`")
        if not os.path.isfile(os.path.join(mdir, "modules.dep")):
            raise EnvUnavailable(f"guest kernel {path}: no modules.dep in {mdir}; pass the matching modules "
                                 "directory as the vm option `modules`, or run `depmod` for it")
        if not version:
            version = os.path.basename(mdir.rstrip("/"))
        return GuestKernel(path, version, mdir, "option")
    if modules:
        raise EnvUnavailable("the vm option `modules` needs the option `kernel` (--virt-vm-kernel) too")

    def usable(version: str) -> str | None:
        mdir = os.path.join(modules_root, version)
        return mdir if os.path.isfile(os.path.join(mdir, "modules.dep")) else None

    release = host_release or platform.release()
    host_image = os.path.join(boot_dir, f"vmlinuz-{release}")
    if os.path.isfile(host_image) and os.access(host_image, os.R_OK) and usable(release):
        return GuestKernel(host_image, release, usable(release), "host")  # type: ignore[arg-type]

    candidates = []
    unreadable = []
    try:
        names = os.listdir(boot_dir)
    except OSError:
        names = []
    for name in names:
        if not name.startswith("vmlinuz-"):
            continue
        version = name[len("vmlinuz-"):]
        path = os.path.join(boot_dir, name)
        if not os.path.isfile(path) or not usable(version):
            continue
        if not os.access(path, os.R_OK):
            unreadable.append(path)
            continue
        candidates.append((version, path))
    if candidates:
        version, path = max(candidates, key=lambda c: _sort_key(c[0]))
        return GuestKernel(path, version, usable(version), "newest")  # type: ignore[arg-type]
    if unreadable:
        raise EnvUnavailable(f"guest kernel {unreadable[0]} is not readable by this user (Ubuntu installs "
                             "kernels mode 0600): `sudo chmod 0644 /boot/vmlinuz-*`, or pass a readable "
                             "copy with --virt-vm-kernel")
    raise EnvUnavailable(f"no guest kernel: neither the host's ({host_image}) nor any {boot_dir}/vmlinuz-* "
                         f"with modules in {modules_root}; " + HOW_TO_GET_KERNEL)


# --------------------------------------------------------------------------
# extraction


def _payload(data: bytes) -> bytes | None:
    """The compressed payload of a bzImage, or None if this is not one."""
    if len(data) < 0x250 or data[0x202:0x206] != b"HdrS":
        return None
    (protocol,) = struct.unpack_from("<H", data, 0x206)
    if protocol < 0x208:
        return None
    setup_sects = data[0x1F1] or 4
    offset, length = struct.unpack_from("<II", data, 0x248)
    start = (setup_sects + 1) * 512 + offset
    return data[start:start + length]


def decompress_payload(payload: bytes) -> bytes | None:
    """Decompress a kernel payload (xz, lzma or gzip); None for others (zstd, lz4...)."""
    if payload.startswith(b"\xfd7zXZ\x00"):
        return lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(payload)
    if payload.startswith(b"\x5d\x00\x00"):
        return lzma.LZMADecompressor(format=lzma.FORMAT_ALONE).decompress(payload)
    if payload.startswith(b"\x1f\x8b"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(payload)
    return None


def pvh_entry(elf: bytes) -> int | None:
    """The PVH entry address from an ELF64 image's notes, or None."""
    if not elf_mod.is_elf64_le(elf):
        return None
    for seg in elf_mod.program_headers(io.BytesIO(elf)):
        if seg.type != elf_mod.PT_NOTE:
            continue
        pos, end = seg.offset, seg.offset + seg.filesz
        while pos + 12 <= end:
            namesz, descsz, ntype = struct.unpack_from("<III", elf, pos)
            name_start = pos + 12
            desc_start = name_start + ((namesz + 3) & ~3)
            name = elf[name_start:name_start + namesz].rstrip(b"\0")
            if name == b"Xen" and ntype == XEN_ELFNOTE_PHYS32_ENTRY:
                size = 8 if descsz >= 8 else 4
                return int.from_bytes(elf[desc_start:desc_start + size], "little")
            pos = desc_start + ((descsz + 3) & ~3)
    return None


@dataclass(frozen=True)
class BootImage:
    path: str  # what QEMU boots
    format: str  # "elf-pvh" or "bzimage"
    reason: str  # why this format


def boot_image(kernel: GuestKernel, cache_dir: str, prefer_elf: bool = True) -> BootImage:
    """The image to boot: the cached PVH ELF when possible, else the bzImage."""
    if not prefer_elf:
        return BootImage(kernel.path, "bzimage", "ELF extraction disabled (vm option elf=0)")
    with open(kernel.path, "rb") as f:
        data = f.read()
    digest = hashlib.sha256(data).hexdigest()[:16]
    kdir = os.path.join(cache_dir, "kernels")
    target = os.path.join(kdir, f"vmlinux-{kernel.version}-{digest}.elf")
    marker = target + ".none"
    if os.path.isfile(target):
        return BootImage(target, "elf-pvh", "cached ELF extracted from the bzImage")
    if os.path.isfile(marker):
        with open(marker) as f:
            return BootImage(kernel.path, "bzimage", f.read().strip())
    reason = ""
    payload = _payload(data)
    elf = None
    if payload is None:
        if data[:4] == b"\x7fELF":
            elf, payload = data, b""
        else:
            reason = "not a bzImage"
    else:
        try:
            elf = decompress_payload(payload)
        except (lzma.LZMAError, zlib.error) as exc:
            reason = f"payload does not decompress: {exc}"
        if elf is None and not reason:
            reason = f"payload compression not supported by the standard library (magic {payload[:4].hex()})"
    if elf is not None and pvh_entry(elf) is None:
        reason, elf = "kernel has no PVH entry note (CONFIG_PVH=n)", None
    os.makedirs(kdir, exist_ok=True)
    if elf is None:
        atomic_write(marker, reason.encode())
        return BootImage(kernel.path, "bzimage", reason)
    if elf is data:
        return BootImage(kernel.path, "elf-pvh", "the kernel is already an ELF image with a PVH note")
    atomic_write(target, elf)
    return BootImage(target, "elf-pvh", "ELF extracted from the bzImage")
