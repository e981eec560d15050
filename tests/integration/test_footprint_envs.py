"""Issue 16 against real Docker and a real libvirt VM: the footprint's
memory figures follow what runs inside, and the loopback workload runs
where ``lo`` is the only interface.

- a compared test that allocates 200 MB in the container moves the
  container's memory figure (its cgroup's high-water mark) by about that;
- a VM's figure on the host (QEMU's resident set) does not drop below what
  its guest says it uses, idle and with 200 MB held.

Without Docker or libvirt the tests skip with the backend's reason, unless
``VIRTOVERHEAD_REQUIRE`` / ``--virt-require`` names the kind.
"""

from __future__ import annotations

import json
import os
import uuid

import pytest
from envrequire import required as _required

from pytest_virtoverhead.envs import Environment, EnvSpec, EnvUnavailable, RunContext, backend_class
from pytest_virtoverhead.workloads import loopback

ROOTDIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MB = 1 << 20

_HELD: list[bytes] = []


def hold(mb: int) -> int:
    """Allocate ``mb`` MiB of touched pages in the worker and keep them."""
    _HELD.append(b"\x01" * (mb * MB))
    return sum(len(b) for b in _HELD)


def release() -> None:
    _HELD.clear()


def _start(config, kind: str, options: dict | None = None) -> Environment:
    cpus = (1,) if 1 in os.sched_getaffinity(0) else (min(os.sched_getaffinity(0)),)
    ctx = RunContext(session_id=f"fp{uuid.uuid4().hex[:8]}", rootdir=ROOTDIR, cpus=cpus, memory_mb=1024,
                     startup_timeout=120, job_timeout=120)
    try:
        env = Environment(backend_class(kind)(EnvSpec(kind, kind, dict(options or {})), ctx))
        env.footprint_on = True  # as the pool sets it for a --virt-compare session
        return env.start()
    except (EnvUnavailable, ImportError) as exc:
        if _required(config, kind):
            pytest.fail(f"{kind} is required but unavailable: {exc}", pytrace=False)
        pytest.skip(f"{kind}: {str(exc).splitlines()[0]}")


# -- container ---------------------------------------------------------------


ALLOC_TEST = """
import pytest

_held = []

@pytest.mark.virt(envs=["container"])
def test_allocate_200mb():
    _held.append(b"\\x01" * (200 << 20))
    _held.clear()
"""


@pytest.mark.container
def test_container_memory_figure_moves_with_a_200mb_allocation(pytester, pytestconfig):
    env = _start(pytestconfig, "container")  # skips without Docker
    env.stop()
    pytester.makepyfile(test_alloc=ALLOC_TEST)
    out = pytester.path / "out.json"
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--virt-compare", "--virt-envs=baremetal,container", "--virt-rounds=2",
        "--virt-processes=1", "--virt-warmup=0", f"--virt-json={out}",
        "--virt-footprint-claim=container.memory >= container.memory_idle + 150 MiB", timeout=600)
    text = result.stdout.str()
    assert result.ret == 0, text
    figs = json.loads(out.read_text())["footprint"]["environments"]["container"]["figures"]
    idle, peak = figs["memory_idle"]["value"], figs["memory_peak"]["value"]
    assert peak - idle >= 190 * MB, (idle, peak)
    assert "cgroup" in figs["memory_peak"]["source"] and "cgroup" in figs["memory_idle"]["source"]
    assert "pass          container.memory >= container.memory_idle + 150 MiB" in text


@pytest.mark.container
def test_container_loopback_is_its_only_interface(pytestconfig):
    env = _start(pytestconfig, "container")
    try:
        out = env.run(loopback.tcp_round_trip, n=50)
        assert out["loopback"]["interfaces"] == ["lo"] and out["loopback"]["up"] is True
        assert out["rate"] > 0
        env.run(hold, 200)
        env.footprint_end()
        figs = env.footprint.to_json()["figures"]
        assert figs["memory_end"]["value"] - figs["memory_idle"]["value"] >= 190 * MB
    finally:
        env.stop()


# -- VM ------------------------------------------------------------------------


@pytest.mark.vm
def test_vm_host_figure_not_below_the_guests_own_view(pytestconfig):
    try:
        accel = pytestconfig.getoption("virt_vm_accel") or "tcg"
    except ValueError:
        accel = "tcg"
    env = _start(pytestconfig, "vm", {"accel": accel})
    try:
        idle = env.footprint.to_json()["figures"]
        assert idle["guest_memory"]["value"] > 0
        assert idle["memory_idle"]["value"] >= idle["guest_memory"]["value"], idle
        out = env.run(loopback.tcp_round_trip, n=20)
        assert out["loopback"]["interfaces"] == ["lo"] and out["loopback"]["up"] is True
        env.run(hold, 200)
        env.footprint_end()  # guest view and QEMU's RSS with the 200 MB held
        figs = env.footprint.to_json()["figures"]
        guest = figs["guest_memory"]
        assert guest["max"] - guest["min"] >= 190 * MB, guest
        assert figs["memory_end"]["value"] >= guest["value"], (figs["memory_end"], guest)
        assert figs["memory_peak"]["value"] >= guest["value"]
        assert "QEMU" in figs["memory_end"]["source"] and "meminfo" in guest["source"]
        parts = figs["storage"]["parts"]
        assert parts["kernel"]["value"] > 0 and parts["initramfs"]["value"] > 0 and "scratch_disk" in parts
    finally:
        env.stop()
