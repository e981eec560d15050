"""What the calibration ran on: CPU, OS, virtualization, steal, load, git."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from typing import Any

from .base import ROOT

# --------------------------------------------------------------------------
# the machine


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


def cpu_model() -> str:
    for line in _read("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def os_release() -> str:
    for line in _read("/etc/os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip().strip('"')
    return platform.system()


def host_virtualization() -> dict[str, Any]:
    """Whether this host is itself a guest: the plugin's own detection (so
    the figures and the plugin's table header agree), with systemd's opinion
    beside it where available."""
    try:
        sys.path.insert(0, ROOT)
        from pytest_virtoverhead.guest import noise

        info = noise.host_virtualization()
        info["label"] = noise.host_label(info)
    except Exception as exc:  # noqa: BLE001 - the plugin itself may be mid-edit
        flags = next((ln for ln in _read("/proc/cpuinfo").splitlines() if ln.startswith("flags")), "")
        info = {"virtual": " hypervisor" in flags, "hypervisor": None,
                "evidence": ["CPU flag 'hypervisor'"] if " hypervisor" in flags else [],
                "label": "", "error": repr(exc)}
    if shutil.which("systemd-detect-virt"):
        p = subprocess.run(["systemd-detect-virt"], capture_output=True, text=True)
        info["systemd_detect_virt"] = p.stdout.strip()
    return info


def proc_stat() -> dict[str, list[int]]:
    """/proc/stat CPU lines: {"cpu": [...], "cpu0": [...], ...}."""
    out = {}
    for line in _read("/proc/stat").splitlines():
        if not line.startswith("cpu"):
            break
        parts = line.split()
        out[parts[0]] = [int(x) for x in parts[1:]]
    return out


def steal_between(a: dict[str, list[int]], b: dict[str, list[int]]) -> dict[str, Any]:
    """Steal share of CPU time between two /proc/stat readings, all CPUs
    ("cpu") and each CPU: steal / (user+nice+system+idle+iowait+irq+softirq+steal)."""
    out: dict[str, Any] = {}
    for name in b:
        if name not in a:
            continue
        d = [y - x for x, y in zip(a[name][:8], b[name][:8])]
        total = sum(d)
        steal = d[7] if len(d) > 7 else 0
        busy = total - d[3] - d[4] if len(d) > 4 else 0
        out[name] = {"steal": steal / total if total > 0 else 0.0, "steal_ticks": steal, "ticks": total,
                     "busy": busy / total if total > 0 else 0.0}
    return out


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def top_processes(n: int = 6) -> list[str]:
    """The busiest processes right now (ps), to name what else loads the host."""
    try:
        p = subprocess.run(["ps", "-eo", "pcpu,pid,etime,comm", "--sort=-pcpu"], capture_output=True,
                           text=True, timeout=10)
        return [ln.strip() for ln in p.stdout.splitlines()[1:n + 1]]
    except (OSError, subprocess.SubprocessError):
        return []


def git_state() -> dict[str, Any]:
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", "-C", ROOT, *args], capture_output=True, text=True,
                                  timeout=20).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""
    dirty = [ln for ln in git("status", "--porcelain", "--", "pytest_virtoverhead").splitlines() if ln.strip()]
    return {"commit": git("rev-parse", "--short", "HEAD"), "subject": git("log", "-1", "--format=%s")[:120],
            "plugin_uncommitted": dirty}


def machine() -> dict[str, Any]:
    return {
        "hostname": platform.node(),
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "os": os_release(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "virtualization": host_virtualization(),
        "time_source": _read("/sys/devices/system/clocksource/clocksource0/current_clocksource"),
    }
