"""What disturbs a timing: the noise sentinel's readings.

Two sides, standard library only (the worker side runs in every
environment):

- in the worker, around one round's calls: involuntary context switches
  (another task took the CPU), CPU time and wall time (:func:`snapshot`,
  :func:`since`);
- on the host, around a whole round: steal time of the CPUs the
  environments are pinned to (the hypervisor under this host ran someone
  else), from ``/proc/stat``, and the load average (:func:`cpu_ticks`,
  :func:`steal_fraction`, :func:`load1`);
- once per session: whether the host is itself a virtual machine
  (:func:`host_virtualization`), so "baremetal" is never claimed for a
  guest.

The rule that turns readings into a "disturbed" flag lives in
:func:`disturbed`; docs/verdicts.md states it with the figures behind it.
"""

from __future__ import annotations

import os
import resource
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Iterable

#: A round is disturbed when the pinned CPUs lost more than this share of
#: their time to steal during it ...
STEAL_LIMIT = 0.10
#: ... (counted only from this many clock ticks of steal: /proc/stat counts
#: in 10 ms ticks, so one tick in a 30 ms round is not evidence) ...
STEAL_MIN_TICKS = 2
#: ... or when a worker was preempted more often than this per second of its
#: round (a quiet pinned CPU shows 0-5 here; another busy task on the same
#: CPU shows hundreds).
NIVCSW_PER_S_LIMIT = 100.0
#: ... and at least this many times (a few preemptions cost well under 1%).
NIVCSW_MIN = 5


#: ... or when a worker spent this much more of its round off the CPU than
#: in its typical round of the same test (another task ran on its CPU, or
#: the host's scheduler kept it waiting: preemptions alone miss a worker
#: that was kept waiting without being switched out often).
OFFCPU_RISE = 0.15


def off_cpu(reading: "dict[str, Any]") -> float | None:
    """Share of a worker's round spent off the CPU (None without readings)."""
    wall, cpu = reading.get("wall") or 0.0, reading.get("cpu")
    if not wall or cpu is None:
        return None
    return max(0.0, 1.0 - cpu / wall)


def off_cpu_rise(current: float | None, history: "list[float]") -> float | None:
    """How much more of this round was off the CPU than the median of the
    earlier rounds (None with fewer than two earlier rounds)."""
    if current is None or len(history) < 2:
        return None
    ordered = sorted(history)
    mid = len(ordered) // 2
    typical = ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
    return current - typical


def snapshot() -> tuple[float, float, int]:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return time.perf_counter(), ru.ru_utime + ru.ru_stime, ru.ru_nivcsw


def since(before: tuple[float, float, int]) -> dict[str, float]:
    """Worker-side readings since :func:`snapshot`: ``wall`` and ``cpu``
    seconds, ``nivcsw`` (involuntary context switches)."""
    wall, cpu, nivcsw = snapshot()
    return {"wall": round(wall - before[0], 6), "cpu": round(cpu - before[1], 6),
            "nivcsw": nivcsw - before[2]}


def cpu_ticks(cpus: "Iterable[int] | None" = None) -> tuple[int, int]:
    """(steal, total) clock ticks of ``cpus`` (all CPUs when None) since boot."""
    wanted = None if cpus is None else {f"cpu{c}" for c in cpus}
    steal = total = 0
    try:
        with open("/proc/stat") as f:
            for line in f:
                if not line.startswith("cpu"):
                    break
                parts = line.split()
                name = parts[0]
                if (wanted is None and name != "cpu") or (wanted is not None and name not in wanted):
                    continue
                values = [int(x) for x in parts[1:]]
                # user nice system idle iowait irq softirq steal guest guest_nice;
                # guest time is already inside user and nice.
                total += sum(values[:8])
                steal += values[7] if len(values) > 7 else 0
    except (OSError, ValueError):
        return 0, 0
    return steal, total


def steal_fraction(before: tuple[int, int], after: tuple[int, int]) -> tuple[float, int]:
    """(share of the ticks that were steal, steal ticks) between two readings."""
    steal = after[0] - before[0]
    total = after[1] - before[1]
    return (steal / total if total > 0 else 0.0), steal


def load1() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def disturbed(steal: float, steal_ticks: int, workers: "Iterable[dict[str, Any]]") -> list[str]:
    """Why a round counts as disturbed (empty: it does not). A worker's
    reading may carry ``offcpu_rise`` (see :func:`off_cpu_rise`)."""
    why = []
    if steal > STEAL_LIMIT and steal_ticks >= STEAL_MIN_TICKS:
        why.append(f"steal {steal:.0%} of the pinned CPUs' time")
    for w in workers:
        wall = w.get("wall") or 0.0
        if wall > 0 and w.get("nivcsw", 0) / wall > NIVCSW_PER_S_LIMIT and w.get("nivcsw", 0) >= NIVCSW_MIN:
            why.append(f"{w.get('env', 'a worker')} preempted {w['nivcsw']} times in {wall:.3f} s")
        rise = w.get("offcpu_rise")
        if rise is not None and rise > OFFCPU_RISE:
            why.append(f"{w.get('env', 'a worker')} off the CPU {rise:.0%} more of its round than usual")
    return why


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


_DMI_NAMES = (
    ("kvm", "KVM"), ("qemu", "QEMU"), ("vmware", "VMware"), ("virtualbox", "VirtualBox"),
    ("innotek", "VirtualBox"), ("xen", "Xen"), ("amazon ec2", "Amazon EC2 (Nitro/KVM)"),
    ("google compute engine", "Google Compute Engine (KVM)"), ("microsoft corporation", "Hyper-V"),
    ("bochs", "Bochs"), ("parallels", "Parallels"), ("openstack", "OpenStack (KVM)"),
)


def host_virtualization() -> dict[str, Any]:
    """Whether this machine is itself a guest, and how we know.

    Returns ``{"virtual": bool, "hypervisor": name or None, "evidence":
    [...]}``. Evidence: the CPU's ``hypervisor`` flag, /sys/hypervisor/type
    (Xen), DMI vendor and product names, and the paravirtual clock sources
    a hypervisor offers (``kvm-clock``, ``hyperv_clocksource``, ``xen``).
    """
    evidence: list[str] = []
    name = None
    flags = ""
    for line in _read("/proc/cpuinfo").splitlines():
        if line.startswith("flags"):
            flags = line
            break
    if " hypervisor" in flags:
        evidence.append("CPU flag 'hypervisor'")
    xen = _read("/sys/hypervisor/type")
    if xen:
        evidence.append(f"/sys/hypervisor/type={xen}")
        name = xen.capitalize()
    dmi = " ".join(_read(f"/sys/class/dmi/id/{f}") for f in ("sys_vendor", "product_name", "bios_vendor")).strip()
    if dmi:
        low = dmi.lower()
        for key, label in _DMI_NAMES:
            if key in low:
                evidence.append(f"DMI '{dmi}'")
                name = name or label
                break
    clocks = _read("/sys/devices/system/clocksource/clocksource0/available_clocksource").split()
    for clock, label in (("kvm-clock", "KVM"), ("hyperv_clocksource_tsc_page", "Hyper-V"), ("xen", "Xen")):
        if clock in clocks:
            evidence.append(f"clock source '{clock}' offered")
            name = name or label
    virtual = bool(evidence)
    return {"virtual": virtual, "hypervisor": name, "evidence": evidence}


def host_label(info: dict[str, Any]) -> str:
    """``"the host, itself a KVM guest"`` or ``"the host"``."""
    if not info.get("virtual"):
        return "the host"
    name = info.get("hypervisor")
    return f"the host, itself a {name} guest" if name else "the host, itself a virtual machine"
