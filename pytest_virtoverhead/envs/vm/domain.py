"""The libvirt domain XML of a guest (xml.etree; no libvirt import).

One transient domain per environment per session:

- ``<domain type='qemu'>`` (TCG) or ``type='kvm'``; direct kernel boot of the
  extracted PVH ELF (or bzImage) with our initramfs; ``<acpi/>`` so that the
  guest's power-off ends the domain; panic and reboot destroy it too.
- no ``<interface>``: the guest has no NIC, only loopback;
- ttyS0: the kernel console, to a log file (diagnostics);
- ttyS1: the worker's channel, a unix socket bound by QEMU on the host;
- the host's ``/`` shared read-only over 9p (mirror mode);
- a virtio scratch disk (ext4) for file I/O workloads;
- vCPUs and the emulator pinned to the session's CPU set;
- ``<metadata>`` carrying the session labels, read back by the reaper;
- a VM generation ID (``<genid/>``), new for every domain, so that a guest
  restored from a saved state reseeds its random number generator;
- for a restore, QEMU's ``-incoming defer`` (see :mod:`.snapshot`).
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

METADATA_NS = "https://github.com/pytest-virtoverhead/vm"
QEMU_NS = "http://libvirt.org/schemas/domain/qemu/1.0"
METADATA_PREFIX = "virtoverhead"
DOMAIN_PREFIX = "virtoverhead-"
WORKDIR_LABEL = "io.github.pytest-virtoverhead.vm.workdir"
#: The host directory shared with the guest (read-only, over 9p), its 9p
#: mount tag (the guest's /init mounts ``hostroot``) and the scratch disk's
#: image format.
SHARE_ROOT = "/"
SHARE_TAG = "hostroot"
SCRATCH_FORMAT = "raw"
#: Where QEMU packages put qboot, a minimal firmware that hands over to the kernel at once.
QBOOT_PATHS = ("/usr/share/qemu/qboot.rom", "/usr/share/qemu/qboot.bin", "/usr/share/seabios/qboot.rom")


def domain_name(session_id: str, env_name: str) -> str:
    clean = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{session_id}-{env_name}")
    return DOMAIN_PREFIX + clean


@dataclass
class DomainConfig:
    name: str
    kernel: str
    initrd: str
    cmdline: str
    console_log: str
    worker_socket: str
    accel: str = "tcg"  # "tcg" or "kvm"
    machine: str = "pc"
    memory_mb: int = 1024
    vcpus: int = 1
    cpus: tuple[int, ...] | None = None
    scratch_disk: str | None = None
    disk_cache: str = "none"
    labels: dict[str, str] = field(default_factory=dict)
    title: str = ""
    cpu_mode: str | None = None  # default: "maximum" under TCG, "host-passthrough" under KVM
    loader: str | None = None  # firmware ROM (e.g. qboot.rom); None: QEMU's default (SeaBIOS)
    incoming: bool = False  # start QEMU waiting for a saved state (-incoming defer): a restore
    genid: bool = False  # a VM generation ID device: a restored guest reseeds its random generator


def qboot_rom() -> str | None:
    """The host's qboot firmware image, if QEMU ships one."""
    for path in QBOOT_PATHS:
        if os.path.isfile(path):
            return path
    return None


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, tag, {k.rstrip("_"): v for k, v in attrs.items()})
    if text is not None:
        el.text = text
    return el


def cpuset_string(cpus: tuple[int, ...]) -> str:
    return ",".join(str(c) for c in cpus)


def metadata_element(labels: dict[str, str]) -> ET.Element:
    """The element stored in ``<metadata>`` (also set with virDomainSetMetadata)."""
    # Prefixed names and the xmlns attribute are written literally so that
    # the declaration sits on this element (libvirt wants it there), not on
    # the document root where ElementTree would hoist it.
    root = ET.Element(f"{METADATA_PREFIX}:labels", {f"xmlns:{METADATA_PREFIX}": METADATA_NS})
    for key, value in sorted(labels.items()):
        ET.SubElement(root, f"{METADATA_PREFIX}:label", {"key": key}).text = value
    return root


def parse_metadata(xml: str) -> dict[str, str]:
    """Labels from the metadata element (as virDomainGetMetadata returns it,
    without its namespace) or from a whole domain XML (with it)."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return {}
    out = {}
    for el in root.iter():
        if el.tag in ("label", f"{{{METADATA_NS}}}label") and el.get("key"):
            out[el.get("key")] = el.text or ""
    return out


def build_xml(cfg: DomainConfig) -> str:
    dom = ET.Element("domain", {"type": "kvm" if cfg.accel == "kvm" else "qemu"})
    _sub(dom, "name", cfg.name)
    if cfg.genid:
        _sub(dom, "genid")
    if cfg.title:
        _sub(dom, "title", cfg.title)
    meta = _sub(dom, "metadata")
    meta.append(metadata_element(cfg.labels))
    _sub(dom, "memory", str(int(cfg.memory_mb)), unit="MiB")
    vcpu_attrs = {"placement": "static"}
    if cfg.cpus:
        vcpu_attrs["cpuset"] = cpuset_string(cfg.cpus)
    _sub(dom, "vcpu", str(int(cfg.vcpus)), **vcpu_attrs)
    if cfg.cpus:
        tune = _sub(dom, "cputune")
        for i in range(cfg.vcpus):
            # one host CPU per vCPU when there are enough, else share the set
            pin = str(cfg.cpus[i]) if len(cfg.cpus) >= cfg.vcpus else cpuset_string(cfg.cpus)
            _sub(tune, "vcpupin", vcpu=str(i), cpuset=pin)
        _sub(tune, "emulatorpin", cpuset=cpuset_string(cfg.cpus))
    os_el = _sub(dom, "os")
    _sub(os_el, "type", "hvm", arch="x86_64", machine=cfg.machine)
    if cfg.loader:
        _sub(os_el, "loader", cfg.loader, type="rom", readonly="yes")
    _sub(os_el, "kernel", cfg.kernel)
    _sub(os_el, "initrd", cfg.initrd)
    _sub(os_el, "cmdline", cfg.cmdline)
    features = _sub(dom, "features")
    _sub(features, "acpi")
    cpu_mode = cfg.cpu_mode or ("host-passthrough" if cfg.accel == "kvm" else "maximum")
    if cpu_mode != "default":
        _sub(dom, "cpu", mode=cpu_mode)
    _sub(dom, "clock", offset="utc")
    _sub(dom, "on_poweroff", "destroy")
    _sub(dom, "on_reboot", "destroy")  # panic=-1 reboots at once: that ends the domain
    _sub(dom, "on_crash", "destroy")
    dev = _sub(dom, "devices")
    if cfg.scratch_disk:
        disk = _sub(dev, "disk", type="file", device="disk")
        _sub(disk, "driver", name="qemu", type=SCRATCH_FORMAT, cache=cfg.disk_cache,
             **({"io": "native"} if cfg.disk_cache in ("none", "directsync") else {}))
        _sub(disk, "source", file=cfg.scratch_disk)
        _sub(disk, "target", dev="vda", bus="virtio")
    fs = _sub(dev, "filesystem", type="mount", accessmode="passthrough", multidevs="remap")
    _sub(fs, "driver", type="path")
    _sub(fs, "source", dir=SHARE_ROOT)
    _sub(fs, "target", dir=SHARE_TAG)
    _sub(fs, "readonly")
    console = _sub(dev, "serial", type="file")
    _sub(console, "source", path=cfg.console_log, append="off")
    _sub(console, "target", port="0")
    chan = _sub(dev, "serial", type="unix")
    _sub(chan, "source", mode="bind", path=cfg.worker_socket)
    _sub(chan, "target", port="1")
    _sub(dev, "controller", type="usb", model="none")
    _sub(dev, "memballoon", model="none")
    if cfg.incoming:
        # libvirt has no element for it: QEMU starts waiting for a migration
        # stream, which snapshot.restore() feeds it from a file.
        dom.set("xmlns:qemu", QEMU_NS)
        line = _sub(dom, "qemu:commandline")
        _sub(line, "qemu:arg", value="-incoming")
        _sub(line, "qemu:arg", value="defer")
    return ET.tostring(dom, encoding="unicode")
