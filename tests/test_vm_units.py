"""Unit tests of the vm kind's pure parts: no libvirt, no guest.

Module ordering from a hand-made modules.dep, the domain XML, kernel
discovery and its error messages, ELF note parsing, the cpio writer, the
acceleration choice and the permission advice.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from pytest_virtoverhead.envs.errors import EnvUnavailable
from pytest_virtoverhead.envs.vm import accel, domain, initramfs, kernel
from pytest_virtoverhead.envs.vm.connect import permission_fix

MODULES_DEP = """\
kernel/fs/9p/9p.ko: kernel/net/9p/9pnet.ko kernel/fs/fscache/fscache.ko kernel/fs/netfs/netfs.ko
kernel/net/9p/9pnet_virtio.ko: kernel/net/9p/9pnet.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/net/9p/9pnet.ko:
kernel/fs/fscache/fscache.ko: kernel/fs/netfs/netfs.ko
kernel/fs/netfs/netfs.ko:
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_legacy_dev.ko kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_pci_legacy_dev.ko:
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_ring.ko:
kernel/arch/x86/crypto/crc32c-intel.ko.xz:
kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
"""


# --------------------------------------------------------------------------
# module order


def test_parse_modules_dep_normalises_names():
    dep = initramfs.parse_modules_dep(MODULES_DEP)
    assert dep["crc32c_intel"][0] == "kernel/arch/x86/crypto/crc32c-intel.ko.xz"
    assert dep["9p"][1] == ["9pnet", "fscache", "netfs"]


def test_load_order_puts_dependencies_first_once():
    dep = initramfs.parse_modules_dep(MODULES_DEP)
    order = initramfs.load_order(dep, ["virtio_pci", "9pnet_virtio", "9p", "virtio_blk", "ext4"])
    assert len(order) == len(set(order))
    for name in order:
        for d in dep[name][1]:
            assert order.index(d) < order.index(name), f"{d} must load before {name}"
    assert set(order) == {"virtio_pci", "virtio_pci_legacy_dev", "virtio_pci_modern_dev", "virtio", "virtio_ring",
                          "9pnet", "9pnet_virtio", "netfs", "fscache", "9p", "virtio_blk"}
    assert "ext4" not in order  # not in modules.dep: built in (the caller checks required ones)
    assert order.index("virtio_ring") < order.index("virtio") < order.index("virtio_pci")
    assert order.index("netfs") < order.index("fscache") < order.index("9p")


def test_load_order_detects_cycles():
    dep = initramfs.parse_modules_dep("a.ko: b.ko\nb.ko: a.ko\n")
    with pytest.raises(ValueError, match="cycle"):
        initramfs.load_order(dep, ["a"])


def test_missing_required_module_is_unavailable(tmp_path):
    (tmp_path / "modules.dep").write_text("kernel/fs/9p/9p.ko:\n")
    with pytest.raises(EnvUnavailable, match="9pnet_virtio"):
        initramfs.build(str(tmp_path), initramfs.InitConfig(python="/usr/bin/python3"), str(tmp_path),
                        busybox=_static_binary())


def _static_binary() -> str:
    for path in initramfs.BUSYBOX_CANDIDATES:
        if os.path.exists(path) and initramfs._is_static(path):
            return path
    pytest.skip("no static busybox here")


def test_init_script_runs_worker_on_ttyS1():
    script = initramfs.init_script(["virtio", "9p"], initramfs.InitConfig(
        python="/opt/py env/bin/python", env={"PYTHONPATH": "/x"}))
    assert script.index("insmod /modules/virtio.ko") < script.index("insmod /modules/9p.ko")
    assert "'/opt/py env/bin/python' -m pytest_virtoverhead.guest.worker --device /dev/ttyS1 --cwd-hex \"$cwdhex\"" in script
    # The project directory arrives with the host's "go" line, not in the
    # script: one initramfs and one saved state serve every project.
    assert "read -r word epoch seed cwdhex" in script
    assert "ro," in script and "trans=virtio" in script
    assert f"VIRTOVERHEAD_SCRATCH={initramfs.SCRATCH_MOUNT}" in script
    assert "PYTHONPATH=/x" in script
    assert "poweroff -f" in script


# --------------------------------------------------------------------------
# cpio


def test_cpio_archive_lists_with_cpio(tmp_path):
    if not shutil.which("cpio"):
        pytest.skip("no cpio tool")
    w = initramfs.CpioWriter()
    w.dir("bin")
    w.file("bin/hello", b"hi\n", 0o755)
    w.symlink("bin/sh", "hello")
    w.chardev("console", 5, 1)
    data = w.finish()
    assert len(data) % 512 == 0
    out = subprocess.run(["cpio", "-itv"], input=data, capture_output=True, check=True).stdout.decode()
    assert "bin/hello" in out and "bin/sh -> hello" in out and "5,   1" in out.replace("5, 1", "5,   1")


# --------------------------------------------------------------------------
# domain XML


def _xml(**kw):
    cfg = domain.DomainConfig(name="virtoverhead-s-vm", kernel="/k", initrd="/i", cmdline="console=ttyS0",
                              console_log="/w/console.log", worker_socket="/w/worker.sock",
                              scratch_disk="/w/scratch.img", labels={"io.github.pytest-virtoverhead.owner": "h:1"},
                              **kw)
    return domain.build_xml(cfg)


def test_xml_has_acpi_no_interface_and_tcg():
    text = _xml(cpus=(1,), vcpus=1)
    root = ET.fromstring(text)
    assert root.get("type") == "qemu"
    assert root.find("features/acpi") is not None
    assert root.find("devices/interface") is None and "<interface" not in text
    assert root.find("os/kernel").text == "/k" and root.find("os/initrd").text == "/i"
    assert root.find("on_reboot").text == "destroy" and root.find("on_poweroff").text == "destroy"
    assert root.find("cpu").get("mode") == "maximum"


def test_xml_cpu_mode_option():
    assert ET.fromstring(_xml(cpu_mode="host-model")).find("cpu").get("mode") == "host-model"
    assert ET.fromstring(_xml(cpu_mode="default")).find("cpu") is None  # QEMU's own CPU model


def test_xml_serial_ports_share_and_disk():
    root = ET.fromstring(_xml())
    serials = root.findall("devices/serial")
    assert [s.get("type") for s in serials] == ["file", "unix"]
    assert serials[0].find("target").get("port") == "0"
    assert serials[1].find("source").get("mode") == "bind"
    assert serials[1].find("source").get("path") == "/w/worker.sock"
    fs = root.find("devices/filesystem")
    assert fs.find("source").get("dir") == "/" and fs.find("readonly") is not None
    disk = root.find("devices/disk")
    assert disk.find("target").get("bus") == "virtio" and disk.find("source").get("file") == "/w/scratch.img"
    assert root.find("devices/memballoon").get("model") == "none"


def test_xml_kvm_and_pinning():
    root = ET.fromstring(_xml(accel="kvm", cpus=(2, 3), vcpus=2, memory_mb=512))
    assert root.get("type") == "kvm"
    assert root.find("cpu").get("mode") == "host-passthrough"
    assert root.find("vcpu").text == "2" and root.find("vcpu").get("cpuset") == "2,3"
    pins = {p.get("vcpu"): p.get("cpuset") for p in root.findall("cputune/vcpupin")}
    assert pins == {"0": "2", "1": "3"}
    assert root.find("cputune/emulatorpin").get("cpuset") == "2,3"
    assert root.find("memory").text == "512" and root.find("memory").get("unit") == "MiB"


def test_xml_metadata_labels_round_trip():
    text = _xml()
    assert domain.parse_metadata(text) == {"io.github.pytest-virtoverhead.owner": "h:1"}
    # the namespace is declared on the metadata element itself
    assert f'<virtoverhead:labels xmlns:virtoverhead="{domain.METADATA_NS}"' in text
    # virDomainGetMetadata returns the element without its prefix
    assert domain.parse_metadata('<labels><label key="a">b</label></labels>') == {"a": "b"}


def test_domain_name_is_safe():
    assert domain.domain_name("abc", "vm") == "virtoverhead-abc-vm"
    assert "/" not in domain.domain_name("a/b", "x y")


# --------------------------------------------------------------------------
# kernel discovery


def _fake_boot(tmp_path, versions, modules=()):
    boot, mods = tmp_path / "boot", tmp_path / "modules"
    boot.mkdir()
    mods.mkdir()
    for v in versions:
        (boot / f"vmlinuz-{v}").write_bytes(b"\0" * 1024)
    for v in modules:
        (mods / v).mkdir()
        (mods / v / "modules.dep").write_text("")
    return str(boot), str(mods)


def test_discover_no_kernel_says_how_to_get_one(tmp_path):
    boot, mods = _fake_boot(tmp_path, [])
    with pytest.raises(EnvUnavailable) as info:
        kernel.discover(boot_dir=boot, modules_root=mods, host_release="9.9")
    msg = str(info.value)
    assert "apt-get install linux-image-amd64" in msg and "--virt-vm-kernel" in msg
    assert "\n" not in msg


def test_discover_kernel_without_modules_is_skipped(tmp_path):
    boot, mods = _fake_boot(tmp_path, ["5.0-a"])
    with pytest.raises(EnvUnavailable, match="no guest kernel"):
        kernel.discover(boot_dir=boot, modules_root=mods, host_release="9.9")


def test_discover_prefers_host_then_newest(tmp_path):
    boot, mods = _fake_boot(tmp_path, ["5.10.0-1", "6.1.0-9", "6.1.0-10"], ["5.10.0-1", "6.1.0-9", "6.1.0-10"])
    newest = kernel.discover(boot_dir=boot, modules_root=mods, host_release="9.9")
    assert newest.version == "6.1.0-10" and newest.source == "newest"
    host = kernel.discover(boot_dir=boot, modules_root=mods, host_release="5.10.0-1")
    assert host.version == "5.10.0-1" and host.source == "host"
    assert host.modules_dir == os.path.join(mods, "5.10.0-1")


def test_discover_option_errors(tmp_path):
    boot, mods = _fake_boot(tmp_path, ["6.1.0-9"])
    with pytest.raises(EnvUnavailable, match="does not exist"):
        kernel.discover(kernel=str(tmp_path / "nope"), modules_root=mods)
    with pytest.raises(EnvUnavailable, match="no modules.dep"):
        kernel.discover(kernel=os.path.join(boot, "vmlinuz-6.1.0-9"), modules_root=mods)
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "modules.dep").write_text("")
    chosen = kernel.discover(kernel=os.path.join(boot, "vmlinuz-6.1.0-9"), modules=str(tmp_path / "m"))
    assert chosen.source == "option" and chosen.modules_dir == str(tmp_path / "m")
    with pytest.raises(EnvUnavailable, match="needs the option `kernel`"):
        kernel.discover(modules=str(tmp_path / "m"))


# --------------------------------------------------------------------------
# ELF / PVH


def _elf_with_note(name: bytes, ntype: int, desc: bytes) -> bytes:
    name_field = name + b"\0"
    note = (struct.pack("<III", len(name_field), len(desc), ntype)
            + name_field + b"\0" * (-len(name_field) % 4) + desc + b"\0" * (-len(desc) % 4))
    phoff, phentsize = 64, 56
    note_off = phoff + phentsize
    ehdr = bytearray(64)
    ehdr[:6] = b"\x7fELF\x02\x01"
    struct.pack_into("<Q", ehdr, 0x20, phoff)
    struct.pack_into("<HH", ehdr, 0x36, phentsize, 1)
    phdr = struct.pack("<IIQQQQQQ", 4, 0, note_off, 0, 0, len(note), len(note), 4)
    return bytes(ehdr) + phdr + note


def test_pvh_entry_found_in_notes():
    elf = _elf_with_note(b"Xen", kernel.XEN_ELFNOTE_PHYS32_ENTRY, struct.pack("<I", 0x1000850))
    assert kernel.pvh_entry(elf) == 0x1000850
    assert kernel.pvh_entry(_elf_with_note(b"GNU", 3, b"abcd")) is None
    assert kernel.pvh_entry(b"not an elf" * 10) is None


def test_boot_image_falls_back_to_the_image(tmp_path):
    img = tmp_path / "vmlinuz-1.0"
    img.write_bytes(b"\0" * 4096)
    k = kernel.GuestKernel(str(img), "1.0", str(tmp_path), "option")
    chosen = kernel.boot_image(k, str(tmp_path / "cache"))
    assert chosen.format == "bzimage" and chosen.path == str(img) and "not a bzImage" in chosen.reason
    assert kernel.boot_image(k, str(tmp_path / "cache")).reason == chosen.reason  # cached verdict


def test_real_kernel_extracts_to_pvh_elf(tmp_path):
    try:
        k = kernel.discover()
    except EnvUnavailable as exc:
        pytest.skip(str(exc))
    chosen = kernel.boot_image(k, str(tmp_path))
    if chosen.format == "elf-pvh":
        with open(chosen.path, "rb") as f:
            assert kernel.pvh_entry(f.read()) is not None


# --------------------------------------------------------------------------
# acceleration and permissions


def test_accel_choice(tmp_path, monkeypatch):
    cache = str(tmp_path)
    assert accel.choose("tcg", cache, "7.2.0", True).accel == "tcg"
    with pytest.raises(ValueError):
        accel.choose("hvf", cache, "7.2.0", True)
    monkeypatch.setattr(accel, "kvm_device_usable", lambda path="/dev/kvm": (True, "ok"))
    first = accel.choose("auto", cache, "7.2.0", True)
    assert first.accel == "kvm" and first.probe
    accel.save_verdict(cache, accel.machine_key("7.2.0"), False, "a KVM guest did not report ready within 15 s")
    later = accel.choose("auto", cache, "7.2.0", True)
    assert later.accel == "tcg" and not later.probe and "cached verdict" in later.reason
    assert "within 15 s" in later.reason
    assert accel.choose("auto", cache, "8.0.0", True).probe  # another QEMU: probe again
    no_libvirt_kvm = accel.choose("auto", str(tmp_path / "other"), "7.2.0", False, "no kvm type")
    assert no_libvirt_kvm.accel == "tcg" and "no kvm type" in no_libvirt_kvm.reason
    monkeypatch.setattr(accel, "kvm_device_usable", lambda path="/dev/kvm": (False, "/dev/kvm does not exist"))
    assert "/dev/kvm does not exist" in accel.choose("auto", cache, "7.2.0", True).reason
    with pytest.raises(RuntimeError, match="accel=kvm"):
        accel.choose("kvm", cache, "7.2.0", True)
    monkeypatch.setattr(accel, "kvm_device_usable", lambda path="/dev/kvm": (True, "ok"))
    with pytest.raises(RuntimeError, match="did not report ready within 15 s on this machine"):
        accel.choose("kvm", cache, "7.2.0", True)  # the cached verdict says KVM guests hang here
    assert accel.choose("kvm", str(tmp_path / "fresh"), "7.2.0", True).accel == "kvm"


def test_permission_advice(monkeypatch):
    from pytest_virtoverhead.envs.vm import connect

    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(connect, "_qemu_conf_user", lambda: None)
    assert 'set user = "+0" and group = "+0"' in permission_fix("qemu:///system")
    assert "restart libvirtd" in permission_fix("qemu:///system")
    monkeypatch.setattr(connect, "_qemu_conf_user", lambda: "+0")
    assert "already sets" in permission_fix("qemu:///system")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert "qemu:///session" in permission_fix("qemu:///system")
    assert "readable" in permission_fix("qemu:///session")


# --------------------------------------------------------------------------
# start point, saved states and the KVM probe


def test_init_script_waits_at_the_start_point_before_the_9p_mount():
    script = initramfs.init_script(["virtio_pci"], initramfs.InitConfig(python="/usr/bin/python3"))
    start = script.index(initramfs.START_POINT)
    assert script.index("insmod /modules/virtio_pci.ko") < start < script.index("mount -a -i -T $F")
    # the fstab's 9p line is written before the start point, mounted after it
    assert script.index("hostroot /newroot 9p trans=virtio") < start
    # one open file for the marker and the host's answer; clock, entropy, stale blocks
    assert "exec 3<>/dev/ttyS1" in script and "read -r word epoch seed cwdhex <&3" in script
    assert 'date -u -s "@$epoch"' in script and "> /dev/urandom" in script
    assert "blockdev --flushbufs /dev/vda" in script
    assert script.index("stty -F /dev/ttyS1 115200 raw -echo") < start


def test_probe_initramfs_prints_before_any_module(tmp_path):
    busybox = _static_binary()
    path = initramfs.build_probe(str(tmp_path), busybox=busybox)
    assert initramfs.build_probe(str(tmp_path), busybox=busybox) == path  # cached
    data = open(path, "rb").read()
    assert initramfs.probe_script().encode() in data and initramfs.PROBE_MARKER.encode() in data
    assert "insmod" not in initramfs.probe_script() and b"modules/" not in data.replace(open(busybox, "rb").read(), b"")


def _cfg(**kw):
    base = dict(name="virtoverhead-s1-vm", kernel="/k", initrd="/i", cmdline="console=ttyS0",
                console_log="/w1/console.log", worker_socket="/w1/worker.sock", scratch_disk="/w1/scratch.img",
                labels={"owner": "a"}, cpus=(1,))
    base.update(kw)
    return domain.DomainConfig(**base)


def test_incoming_domain_waits_for_a_state():
    xml = domain.build_xml(_cfg(incoming=True))
    root = ET.fromstring(xml)
    args = [el.get("value") for el in root.iter(f"{{{domain.QEMU_NS}}}arg")]
    assert args == ["-incoming", "defer"]
    assert "commandline" not in domain.build_xml(_cfg())


def test_state_key_ignores_per_session_names_paths_and_pins():
    import dataclasses

    from pytest_virtoverhead.envs.vm import snapshot

    def key(cfg):
        generic = dataclasses.replace(cfg, name="x", console_log="/c", worker_socket="/w", scratch_disk="/s",
                                      labels={}, title="", cpus=None)
        return snapshot.key(domain.build_xml(generic), ["/k:1:2", "/i", "qemu 7.2"])

    a = key(_cfg())
    assert a == key(_cfg(name="virtoverhead-s2-vm", console_log="/w2/c", labels={"owner": "b"}, cpus=(0,)))
    assert a != key(_cfg(memory_mb=512))
    assert a != key(_cfg(machine="q35"))
    assert a != key(_cfg(accel="kvm"))


def test_saved_states_are_pruned(tmp_path):
    from pytest_virtoverhead.envs.vm import snapshot

    paths = []
    for i in range(snapshot.KEEP + 2):
        p = tmp_path / f"guest-{i}.state"
        p.write_bytes(b"x")
        os.utime(p, (1000 + i, 1000 + i))
        paths.append(p)
    snapshot._prune(str(tmp_path), keep=str(paths[-1]))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths[-snapshot.KEEP:])


def test_probe_timeout_is_short():
    assert accel.PROBE_TIMEOUT <= 3.0


def test_init_script_mounts_everything_with_one_mount_after_the_start_point():
    script = initramfs.init_script(["virtio_pci"], initramfs.InitConfig(python="/usr/bin/python3"))
    start = script.index(initramfs.START_POINT)
    after = script[start:]
    assert after.count("mount -") == 1 and "mount -a -i -T $F" in after  # one exec of busybox
    lines = [ln for ln in script.splitlines() if ln.startswith("printf '%s\\n' ") and ln.endswith("> /fstab.scratch")]
    assert len(lines) == 1
    order = ["hostroot /newroot 9p", "devtmpfs /newroot/dev ", "tmpfs /newroot/dev/shm ", "devpts /newroot/dev/pts ",
             "proc /newroot/proc ", "sysfs /newroot/sys ", f"{initramfs.RUN_STAGE} /newroot/run none bind",
             f"/dev/vda /newroot{initramfs.SCRATCH_MOUNT} ext4 noatime"]
    positions = [lines[0].index(x) for x in order]
    assert positions == sorted(positions)
    # /run's directories (the scratch mount point, TMPDIR) exist before the start point
    before = script[:start]
    assert f"mkdir -p {initramfs.RUN_STAGE}/virtoverhead/scratch {initramfs.RUN_STAGE}/virtoverhead/tmp" in before
    assert f"chmod 1777 {initramfs.RUN_STAGE}/virtoverhead/tmp" in before
    assert f"chmod 1777 $R{initramfs.SCRATCH_MOUNT}" in after


# --------------------------------------------------------------------------
# the interpreter started before the start point (prestart)


def test_init_script_prestarts_the_worker_before_the_start_point():
    from pytest_virtoverhead.envs.vm import prestart
    from pytest_virtoverhead.guest import worker

    assert worker.PRESTART_VAR == initramfs.PRESTART_VAR
    script = initramfs.init_script(["virtio_pci"], initramfs.InitConfig(python="/usr/bin/python3",
                                                                        prestart=True))
    start = script.index(initramfs.START_POINT)
    launch = script.index(f"{initramfs.PRESTART_VAR}={prestart.CONFIG} /usr/bin/python3 -m pytest_virtoverhead.guest.worker")
    # the prestarted worker meets the host itself; the shell only waits for it
    assert launch < script.index('if [ "$up" = waiting ]; then\n    wait $W') < start
    # a worker that could not prestart: started after the mounts, as before
    assert start < script.index("mount -a -i -T $F") < script.index(
        "busybox chroot $R /usr/bin/python3 -m pytest_virtoverhead.guest.worker")
    plain = initramfs.init_script(["virtio_pci"], initramfs.InitConfig(python="/usr/bin/python3"))
    assert initramfs.PRESTART_VAR not in plain and "mkfifo" not in plain


def test_prestart_tree_mirrors_symlinks_and_refuses_the_initramfs_own_paths(tmp_path):
    from pytest_virtoverhead.envs.vm import prestart

    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "lib.so").write_bytes(b"x" * 10)
    (tmp_path / "link").symlink_to("real")
    tree = prestart.Tree()
    tree.add(str(tmp_path / "link" / "lib.so"))
    rel = str(tmp_path)[1:]
    assert tree.entries[f"{rel}/link"] == ("symlink", "real")
    assert tree.entries[f"{rel}/real/lib.so"] == ("file", str(tmp_path / "real" / "lib.so"))
    assert tree.entries[f"{rel}/real"] == ("dir", "")
    w = initramfs.CpioWriter()
    assert tree.write(w) == 10
    with pytest.raises(prestart.Unsupported):
        prestart.Tree().add("/bin/sh")  # busybox's /bin in the initramfs


def test_prestart_copies_the_loaded_part_of_an_elf():
    import struct

    from pytest_virtoverhead.envs.vm import prestart

    data = open(os.path.realpath(sys.executable), "rb").read()
    out = prestart.loaded_part(data)
    assert len(out) <= len(data) and data[:0x28] == out[:0x28]
    if len(out) < len(data):
        assert struct.unpack_from("<Q", out, 0x28)[0] == 0 and out[0x40:] == data[0x40:len(out)]
    assert prestart.loaded_part(b"not an elf") == b"not an elf"


def test_prestart_discovers_the_interpreters_start_files(tmp_path):
    from pytest_virtoverhead.envs.vm import prestart

    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "VIRTUAL_ENV", "PYTHONPATH")}
    found = prestart.discover(sys.executable, env, str(tmp_path))
    assert any(p.endswith(os.path.join("pytest_virtoverhead", "guest", "worker.py")) for p in found["files"])
    assert sys.executable in found["files"] and "pytest_virtoverhead.guest.clock" in found["modules"]
    assert found["sys_path"] and found["executable"] == sys.executable
    assert prestart.discover(sys.executable, env, str(tmp_path)) == found  # cached
    assert "pytest_virtoverhead.guest.vmguest" in found["modules"]
    cfg = prestart.config(found, "/newroot", initramfs.START_POINT, initramfs.SCRATCH_MOUNT)
    assert cfg["root"] == "/newroot" and cfg["fd"] == prestart.UP_FD and cfg["marker"] == initramfs.START_POINT


def test_vmguest_meets_the_host_and_mounts_from_the_fstab(tmp_path, monkeypatch):
    from pytest_virtoverhead.guest import vmguest

    calls = []

    class FakeLibc:
        def mount(self, *args):
            calls.append(args)
            return 0

    monkeypatch.setattr(vmguest, "_libc", FakeLibc())
    monkeypatch.setattr(vmguest, "SCRATCH_DEVICE", str(tmp_path / "no-disk"))
    monkeypatch.setattr(vmguest.time, "clock_settime", lambda *a: calls.append(("clock",) + a))
    monkeypatch.setattr(vmguest, "say", lambda text: calls.append(("say", text)))
    fstab = tmp_path / "fstab"
    fstab.write_text("hostroot /newroot 9p trans=virtio,version=9p2000.L,ro,msize=512,cache=loose 0 0\n"
                     "/run.guest /newroot/run none bind 0 0\n")
    sent = []
    incoming = iter(b"go 1700000000 ab\n")
    vmguest.start_point("marker", lambda n: bytes([next(incoming)]), sent.append, str(fstab), "/nonexistent", "/s")
    assert sent == [b"marker\n"]
    assert ("clock", vmguest.time.CLOCK_REALTIME, 1700000000.0) in calls
    assert (b"hostroot", b"/newroot", b"9p", 1, b"trans=virtio,version=9p2000.L,msize=512,cache=loose") in calls
    assert (b"/run.guest", b"/newroot/run", b"none", 4096, None) in calls
    assert ("say", "no scratch disk") in calls and calls[-1] == ("say", "starting worker")


def test_prestart_discovery_covers_what_the_prestarted_worker_imports(tmp_path):
    """A module the prestarted worker imports before the start point but
    the discovery does not is missing from the guest's copy: the guest then
    falls back to starting the worker after the mounts (slow, silently)."""
    import ast
    import inspect

    from pytest_virtoverhead.envs.vm import prestart
    from pytest_virtoverhead.guest import vmguest

    names = set()
    for tree in (ast.parse(inspect.getsource(vmguest)),):
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module != "__future__":
                names.add(node.module)
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "VIRTUAL_ENV", "PYTHONPATH")}
    found = prestart.discover(sys.executable, env, str(tmp_path))
    assert names and names <= set(found["modules"]), names - set(found["modules"])


def test_uninterrupted_holds_ctrl_c_until_the_destroy_ends():
    import _thread
    import time

    from pytest_virtoverhead.envs.vm.connect import uninterrupted

    steps = []

    def destroy():
        steps.append("begun")
        _thread.interrupt_main()  # Ctrl-C while the destroy runs
        time.sleep(0.3)
        steps.append("ended")

    with pytest.raises(KeyboardInterrupt):
        uninterrupted(destroy)
    assert steps == ["begun", "ended"]


def test_uninterrupted_passes_on_the_destroy_s_error():
    from pytest_virtoverhead.envs.vm.connect import uninterrupted

    def destroy():
        raise OSError("libvirt went away")

    with pytest.raises(OSError, match="libvirt went away"):
        uninterrupted(destroy)
