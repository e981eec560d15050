"""The ``vm`` environment against a real libvirtd and a real guest kernel.

Nothing is mocked: every test boots (or creates) real libvirt domains, under
QEMU TCG unless told otherwise. One guest serves the whole module; only the
failure tests (panic, hang, KVM fallback) boot guests of their own, and the
reaper test creates paused domains that never run.

Without libvirt-python, libvirtd or a guest kernel the tests skip with the
backend's own one-line reason, unless the vm kind is required
(``--virt-require=vm``, or ``vm`` in the environment variable
``VIRT_REQUIRE`` or ``VIRTOVERHEAD_REQUIRE``): then they fail.

Functions run inside the guest are defined at module level (the worker finds
them by module and file, through the read-only 9p share of the host's root).
No timing is asserted.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import subprocess
import sys
import uuid

import pytest
from envrequire import required

from pytest_virtoverhead.envs import Environment, EnvSpec, EnvUnavailable, RemoteError, RunContext, backend_class
from pytest_virtoverhead.fsutil import default_cache_dir
from pytest_virtoverhead.wire.envvars import SCRATCH_ENV

ROOTDIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

pytestmark = pytest.mark.vm


# --------------------------------------------------------------------------
# functions that run inside the guest


def guest_facts() -> dict:
    with open("/proc/mounts") as f:
        mounts = f.read()
    return {
        "kernel": platform.release(),
        "hostname": platform.node(),
        "net": sorted(os.listdir("/sys/class/net")),
        "mounts": mounts,
        "scratch": os.environ.get(SCRATCH_ENV),
        "cpus": os.cpu_count(),
        "executable": sys.executable,
    }


def add(a, b):
    return {"sum": a + b, "pid": os.getpid()}


def clock_and_random() -> dict:
    import time

    return {"time": time.time(), "random": os.urandom(16).hex()}


def explode(message):
    raise ValueError(f"guest says {message}")


def write_host_path(path):
    try:
        with open(path, "w") as f:
            f.write("must not land on the host")
    except OSError as exc:
        return {"errno": exc.errno, "error": str(exc)}
    return {"errno": None, "error": None}


def use_scratch(data):
    scratch = os.environ[SCRATCH_ENV]
    path = os.path.join(scratch, "probe.bin")
    with open(path, "wb") as f:
        f.write(data.encode() * 1024)
        f.flush()
        os.fsync(f.fileno())
    size = os.path.getsize(path)
    os.unlink(path)
    fstype = None
    with open("/proc/mounts") as f:
        for line in f:
            parts = line.split()
            if parts[1] == scratch:
                fstype = parts[2]
    return {"size": size, "fstype": fstype, "device": os.stat(scratch).st_dev}


# --------------------------------------------------------------------------
# fixtures


def _required(config) -> bool:
    return required(config, "vm")


def _context(tmp_root: str) -> RunContext:
    cpus = (1,) if 1 in os.sched_getaffinity(0) else (min(os.sched_getaffinity(0)),)
    cache = os.environ.get("VIRTOVERHEAD_TEST_CACHE") or default_cache_dir()
    return RunContext(session_id=f"t{uuid.uuid4().hex[:8]}", rootdir=ROOTDIR, cpus=cpus, memory_mb=1024,
                      cache_dir=cache, startup_timeout=120, job_timeout=120)


def _start(pytestconfig, options: dict, ctx: RunContext) -> Environment:
    try:
        backend = backend_class("vm")(EnvSpec("vm", "vm", options), ctx)
        return Environment(backend).start()
    except EnvUnavailable as exc:
        if _required(pytestconfig):
            pytest.fail(f"vm is required but unavailable: {exc}", pytrace=False)
        pytest.skip(f"vm: {str(exc).splitlines()[0]}")


def _accel_option(config) -> str:
    try:
        return config.getoption("virt_vm_accel") or "tcg"
    except ValueError:
        return "tcg"


@pytest.fixture(scope="module")
def vm_ctx(tmp_path_factory):
    return _context(str(tmp_path_factory.mktemp("vm")))


@pytest.fixture(scope="module")
def guest(pytestconfig, vm_ctx):
    env = _start(pytestconfig, {"accel": _accel_option(pytestconfig)}, vm_ctx)
    yield env
    env.stop()
    assert not _domains_named(env.backend.dom_name), "the module's guest outlived stop()"


def _conn(uri: str | None = None):
    libvirt = pytest.importorskip("libvirt")
    from pytest_virtoverhead.envs.vm.connect import default_uri

    return libvirt, libvirt.open(uri or default_uri())


def _domains_named(name: str) -> list[str]:
    libvirt, conn = _conn()
    try:
        return [d.name() for d in conn.listAllDomains(0) if d.name() == name]
    finally:
        conn.close()


# --------------------------------------------------------------------------
# the shared guest


def test_worker_runs_in_the_guest_kernel(guest):
    facts = guest.run(guest_facts)
    meta = guest.metadata
    assert facts["kernel"] == meta["guest_kernel_version"]
    assert facts["kernel"] != platform.release(), "the guest reports the host's kernel: not a VM"
    assert facts["hostname"] == "virtoverhead-guest"
    assert facts["cpus"] == meta["vcpus"] == len(guest.ctx.cpus)
    assert meta["kind"] == "vm"
    assert meta["accel"] in ("tcg", "kvm") and meta["accel_reason"]
    if meta["accel_reason"] == "requested: accel=tcg":
        assert meta["accel"] == "tcg"
    for key in ("machine", "qemu_version", "libvirt_version", "memory_mb", "boot_seconds", "clocksource",
                "guest_kernel"):
        assert meta.get(key), key


def test_result_and_many_jobs_over_one_channel(guest):
    results = [guest.run(add, i, 2) for i in range(5)]
    assert [r["sum"] for r in results] == [2, 3, 4, 5, 6]
    assert len({r["pid"] for r in results}) == 1, "one long-lived worker serves every job"


def test_remote_traceback(guest):
    with pytest.raises(RemoteError) as info:
        guest.run(explode, "boom")
    err = info.value
    assert err.type_name == "ValueError"
    assert "guest says boom" in err.remote_message
    assert "explode" in err.remote_traceback and "test_vm.py" in err.remote_traceback
    assert guest.run(add, 1, 1)["sum"] == 2, "the worker survives a failing job"


def test_host_root_is_read_only(guest):
    target = os.path.join(ROOTDIR, f".vm-write-probe-{uuid.uuid4().hex[:6]}")
    result = guest.run(write_host_path, target)
    assert result["errno"] is not None, "a write to the host's files succeeded inside the guest"
    assert not os.path.exists(target)
    assert " / 9p " in guest.run(guest_facts)["mounts"] or "hostroot / 9p" in guest.run(guest_facts)["mounts"]


def test_scratch_disk_is_writable_ext4(guest):
    out = guest.run(use_scratch, "x" * 64)
    assert out["size"] == 64 * 1024
    assert out["fstype"] == "ext4"


def test_no_network_interface(guest):
    assert guest.run(guest_facts)["net"] == ["lo"]


def test_domain_is_labelled_and_transient(guest):
    libvirt, conn = _conn(guest.metadata["libvirt_uri"])
    try:
        dom = conn.lookupByName(guest.backend.dom_name)
        assert dom.isActive() and not dom.isPersistent()
        xml = dom.XMLDesc()
        assert "<interface" not in xml
        from pytest_virtoverhead.envs.vm.domain import METADATA_NS, parse_metadata

        labels = parse_metadata(dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, METADATA_NS))
        assert labels["io.github.pytest-virtoverhead.session"] == guest.ctx.session_id
        assert labels["io.github.pytest-virtoverhead.owner"].endswith(f":{os.getpid()}")
    finally:
        conn.close()


# --------------------------------------------------------------------------
# failures end in clear errors and leave nothing


@pytest.mark.parametrize("kernel_args,kind", [
    # busybox run as init prints its usage and exits: the kernel panics.
    ("rdinit=/bin/busybox", "panic"),
    # a shell on a console with no input: the guest never says ready.
    ("rdinit=/bin/sh", "hang"),
])
def test_panic_or_hang_ends_in_clear_error(pytestconfig, guest, vm_ctx, kernel_args, kind):
    ctx = dataclasses.replace(vm_ctx, session_id=f"t{uuid.uuid4().hex[:8]}")
    backend = backend_class("vm")(EnvSpec("broken", "vm", {
        "accel": "tcg", "kernel_args": kernel_args, "boot_timeout": "20", "boot_retries": "0"}), ctx)
    env = Environment(backend)
    with pytest.raises(EnvUnavailable) as info:
        env.start()
    text = str(info.value)
    assert "guest console (tail)" in text
    if kind == "panic":
        assert "Kernel panic" in text
    else:
        assert "within 20 s" in text
        assert "Run /bin/sh as init process" in text
    assert not _domains_named(backend.dom_name), "a failed guest's domain remains"
    assert backend.workdir is None
    env.stop()  # idempotent


def test_permission_denied_says_which_fix_applies(pytestconfig, guest, vm_ctx, tmp_path):
    """A worker the guest cannot execute (here a 0644 'interpreter') gets
    Permission denied inside the guest: the error names the fix."""
    fake = tmp_path / "python"
    fake.write_bytes(b"#!/bin/sh\n")
    fake.chmod(0o644)
    ctx = dataclasses.replace(vm_ctx, session_id=f"t{uuid.uuid4().hex[:8]}")
    backend = backend_class("vm")(EnvSpec("denied", "vm", {"accel": "tcg", "python": str(fake),
                                                           "boot_retries": "0"}), ctx)
    with pytest.raises(EnvUnavailable) as info:
        Environment(backend).start()
    first = str(info.value).splitlines()[0]
    assert "Permission denied" in first
    assert "qemu.conf" in first or "qemu:///session" in first
    assert not _domains_named(backend.dom_name)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_reap_destroys_domains_of_dead_owners(guest, vm_ctx):
    from pytest_virtoverhead.envs.vm import VMBackend, domain

    libvirt, conn = _conn(guest.metadata["libvirt_uri"])
    live = guest.backend
    made = []
    try:
        for owner_pid in (_dead_pid(), os.getpid()):
            ctx = dataclasses.replace(vm_ctx, session_id=f"r{uuid.uuid4().hex[:8]}", owner_pid=owner_pid)
            name = domain.domain_name(ctx.session_id, "vm")
            workdir = os.path.join(os.path.dirname(live.workdir), f"virtoverhead-{name[len('virtoverhead-'):]}-reap")
            os.makedirs(workdir, exist_ok=True)
            cfg = domain.DomainConfig(
                name=name, kernel=live.boot_paths[0], initrd=live.boot_paths[1], cmdline="console=ttyS0",
                console_log=os.path.join(workdir, "console.log"), worker_socket=os.path.join(workdir, "w.sock"),
                accel="tcg", labels={**ctx.labels(), domain.WORKDIR_LABEL: workdir})
            conn.createXML(domain.build_xml(cfg), libvirt.VIR_DOMAIN_START_PAUSED)
            made.append((name, workdir, owner_pid))
        removed = VMBackend.reap(vm_ctx)
        dead_name, dead_dir, _ = made[0]
        live_name, live_dir, _ = made[1]
        assert f"vm domain {dead_name}" in removed
        assert not _domains_named(dead_name)
        assert not os.path.exists(dead_dir)
        assert _domains_named(live_name), "reap destroyed a domain whose owner is alive"
        assert _domains_named(live.dom_name), "reap destroyed the running session's guest"
    finally:
        for name, workdir, _ in made:
            try:
                conn.lookupByName(name).destroy()
            except libvirt.libvirtError:
                pass
            subprocess.run(["rm", "-rf", workdir], check=False)
        conn.close()


# --------------------------------------------------------------------------
# acceleration


def test_auto_accel_records_why(pytestconfig, guest, vm_ctx, tmp_path):
    """accel=auto with an empty verdict cache: probe KVM (short bound), fall
    back to TCG where a KVM guest does not boot, and say so; the verdict is
    cached so the next session does not probe again."""
    ctx = dataclasses.replace(vm_ctx, session_id=f"t{uuid.uuid4().hex[:8]}", cache_dir=str(tmp_path))
    env = _start(pytestconfig, {"accel": "auto", "kvm_probe_timeout": "6"}, ctx)
    try:
        meta = env.metadata
        assert meta["accel"] in ("kvm", "tcg")
        assert meta["accel_reason"].startswith("auto: ")
        if meta["accel"] == "tcg":
            assert "KVM" in meta["accel_reason"] or "/dev/kvm" in meta["accel_reason"]
        assert env.run(add, 2, 3)["sum"] == 5
    finally:
        env.stop()
    if os.path.exists("/dev/kvm") and meta["boot_attempts"][0].startswith("kvm"):
        assert os.path.exists(os.path.join(str(tmp_path), "vm", "accel-verdicts.json"))


# --------------------------------------------------------------------------
# saved state


def test_later_starts_restore_the_saved_state(pytestconfig, vm_ctx, tmp_path):
    """The first start of a configuration saves the guest at its start point
    (before the 9p mount); later ones restore it. A restored guest has the
    host's clock, its own random numbers and a fresh scratch disk."""
    ctx = dataclasses.replace(vm_ctx, cache_dir=str(tmp_path))
    facts, modes = [], []
    for i in range(3):
        env = _start(pytestconfig, {"accel": "tcg"}, dataclasses.replace(ctx, session_id=f"s{uuid.uuid4().hex[:8]}"))
        try:
            modes.append(env.metadata["start_mode"])
            got = env.run(clock_and_random)
            got["skew"] = abs(got["time"] - __import__("time").time())
            got["scratch"] = env.run(use_scratch, "fresh")
            facts.append(got)
            if i == 0:
                assert "saved now" in env.metadata["snapshot"], env.metadata["snapshot"]
            else:
                assert "restored" in env.metadata["snapshot"]
                assert "restored" in env.metadata["boot_phases"]
        finally:
            env.stop()
    assert modes == ["booted", "restored", "restored"]
    assert all(f["skew"] < 5 for f in facts), facts
    assert len({f["random"] for f in facts}) == 3
    assert all(f["scratch"]["fstype"] == "ext4" and f["scratch"]["size"] == 5 * 1024 for f in facts)
