"""Which acceleration a guest gets: KVM or QEMU's TCG (software emulation).

``auto`` uses KVM when /dev/kvm opens and libvirt offers it, but only once a
KVM guest has been seen to boot on this machine: on some hosts (nested
virtualization that does not work) /dev/kvm opens and a KVM guest hangs in
early boot. The first session probes with a short bound; the verdict is
cached per machine (hostname, host kernel, QEMU version) in the cache
directory so later sessions do not pay for the probe again.

Standard library only (the libvirt connection is passed in).
"""

from __future__ import annotations

import json
import os
import platform
import socket
import time
from dataclasses import dataclass
from typing import Any

from ...fsutil import atomic_write

ACCELS = ("auto", "kvm", "tcg")
#: Seconds the KVM probe guest gets to reach user space (it needs well under
#: one where KVM works; a guest where nested virtualization fails never does).
PROBE_TIMEOUT = 3.0
VERDICT_FILE = "accel-verdicts.json"


@dataclass
class AccelChoice:
    accel: str  # what to boot first: "kvm" or "tcg"
    reason: str
    probe: bool = False  # True: a KVM boot that may fail; fall back to TCG then


def kvm_device_usable(path: str = "/dev/kvm") -> tuple[bool, str]:
    if not os.path.exists(path):
        return False, f"{path} does not exist (no hardware virtualization, or the kvm module is not loaded)"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except OSError as exc:
        return False, f"{path} cannot be opened: {exc.strerror} (add this user to the kvm group)"
    os.close(fd)
    return True, f"{path} opens"


def machine_key(qemu_version: str) -> str:
    return f"{socket.gethostname()}|{platform.release()}|qemu {qemu_version}"


def _verdict_path(cache_dir: str) -> str:
    return os.path.join(cache_dir, VERDICT_FILE)


def load_verdict(cache_dir: str, key: str) -> dict[str, Any] | None:
    try:
        with open(_verdict_path(cache_dir)) as f:
            return json.load(f).get(key)
    except (OSError, ValueError, AttributeError):
        return None


def save_verdict(cache_dir: str, key: str, works: bool, detail: str) -> None:
    path = _verdict_path(cache_dir)
    try:
        os.makedirs(cache_dir, exist_ok=True)
        try:
            with open(path) as f:
                data = json.load(f)
            if not isinstance(data, dict):
                data = {}
        except (OSError, ValueError):
            data = {}
        data[key] = {"kvm_works": works, "detail": detail, "when": time.strftime("%Y-%m-%d %H:%M:%S")}
        atomic_write(path, json.dumps(data, indent=1, sort_keys=True))
    except OSError:
        pass  # a cache that cannot be written only costs a probe next time


def choose(requested: str, cache_dir: str, qemu_version: str, libvirt_has_kvm: bool,
           libvirt_kvm_detail: str = "") -> AccelChoice:
    """Decide the first boot's acceleration (the backend falls back if ``probe``)."""
    requested = (requested or "auto").lower()
    if requested not in ACCELS:
        raise ValueError(f"vm option accel must be one of {', '.join(ACCELS)}, not {requested!r}")
    if requested == "tcg":
        return AccelChoice("tcg", "requested: accel=tcg")
    ok, why = kvm_device_usable()
    if requested == "kvm":
        if not ok:
            raise RuntimeError(f"accel=kvm requested but {why}; use --virt-vm-accel=tcg or auto")
        if not libvirt_has_kvm:
            raise RuntimeError(f"accel=kvm requested but libvirt offers no KVM domains here ({libvirt_kvm_detail}); "
                               "use --virt-vm-accel=tcg or auto")
        verdict = load_verdict(cache_dir, machine_key(qemu_version))
        if verdict is not None and not verdict.get("kvm_works"):
            raise RuntimeError(f"accel=kvm requested but {verdict.get('detail', 'a KVM guest did not boot')} on "
                               f"this machine (verdict of {verdict.get('when', '?')}; delete "
                               f"{_verdict_path(cache_dir)} to try again); use --virt-vm-accel=tcg or auto")
        return AccelChoice("kvm", "requested: accel=kvm")
    if not ok:
        return AccelChoice("tcg", f"auto: {why}")
    if not libvirt_has_kvm:
        return AccelChoice("tcg", f"auto: libvirt offers no KVM domain type ({libvirt_kvm_detail})")
    verdict = load_verdict(cache_dir, machine_key(qemu_version))
    if verdict is not None:
        when = verdict.get("when", "?")
        if verdict.get("kvm_works"):
            return AccelChoice("kvm", f"auto: KVM guests boot on this machine (cached verdict of {when})")
        return AccelChoice("tcg", f"auto: {verdict.get('detail', 'a KVM guest did not boot')} "
                                  f"(cached verdict of {when}; delete {_verdict_path(cache_dir)} to probe again)")
    return AccelChoice("kvm", "auto: probing KVM", probe=True)
