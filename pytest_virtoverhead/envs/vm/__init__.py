"""The ``vm`` kind: the worker inside a libvirt/QEMU guest.

A transient libvirt domain boots the guest kernel directly (its PVH ELF image,
extracted once from the bzImage and cached) with a busybox initramfs that
mounts the host's root read-only over 9p and runs the host's own interpreter
as the worker on the guest's second serial port, a unix socket on the host.
One guest per environment per session; many jobs over that one channel.

libvirt-python is imported only when a VM is started (or reaped), so the
plugin loads where it is absent. See docs/vms.md.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from typing import Any

from ..base import SCRATCH_ENV, Backend, EnvError, EnvUnavailable, RunContext, SocketTransport, Transport, owner_alive
from . import (
    accel as accel_mod,
    domain as domain_mod,
    initramfs,
    kernel as kernel_mod,
    prestart as prestart_mod,
    snapshot as snapshot_mod,
)

__all__ = ["VMBackend"]

#: Console text that means the boot cannot succeed (no point waiting longer).
FATAL_CONSOLE = re.compile(r"Kernel panic - not syncing.*|virtoverhead-init: \[[\d.]+\] FAILED.*"
                           r"|virtoverhead-init: \[[\d.]+\] worker exited.*")
INIT_STEP = re.compile(r"virtoverhead-init: \[[\d.]+\] ([a-z][a-z ]*)")
DENIED_CONSOLE = re.compile(r".*(Permission denied|PermissionError).*")
WORKDIR_PREFIX = "virtoverhead-"
PASS_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "PYTHONPATH", "PYTHONHASHSEED",
            "PYTHONWARNINGS", "VIRTUAL_ENV", "PYTHONDEVMODE")


def _import_libvirt():
    try:
        import libvirt  # lazy on purpose
    except ImportError:
        raise EnvUnavailable("libvirt-python is not installed: `pip install libvirt-python` "
                             "(needs libvirt-dev and pkg-config to build)") from None
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)  # no stderr noise
    return libvirt


def default_uri() -> str:
    """qemu:///system as root (the system daemon runs QEMU), qemu:///session
    otherwise (QEMU runs as the user, so it can read the user's files)."""
    return "qemu:///system" if os.geteuid() == 0 else "qemu:///session"


def _version(n: int) -> str:
    return f"{n // 1000000}.{n // 1000 % 1000}.{n % 1000}"


def _qemu_conf_user(path: str = "/etc/libvirt/qemu.conf") -> str | None:
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return None
    user = None
    for line in text.splitlines():
        m = re.match(r'\s*user\s*=\s*"([^"]*)"', line)
        if m:
            user = m.group(1)
    return user


def permission_fix(uri: str) -> str:
    """Which fix applies when QEMU cannot read the host files it shares."""
    if uri.startswith("qemu:///system") or uri.startswith("qemu:///session") and os.geteuid() == 0:
        if os.geteuid() == 0:
            user = _qemu_conf_user()
            if user in ("+0", "root", "0"):
                return (f'/etc/libvirt/qemu.conf already sets user = "{user}" (QEMU runs as root): restart '
                        'libvirtd if that changed since it started (scripts/provision.sh), otherwise the file '
                        'itself is not readable or executable: check its mode')
            now = f' (it is now {user!r})' if user else " (default: libvirt-qemu)"
            return ('QEMU runs as the user of /etc/libvirt/qemu.conf' + now + ' and cannot read the interpreter, '
                    'virtualenv or project through the 9p share: as root set user = "+0" and group = "+0" in '
                    '/etc/libvirt/qemu.conf and restart libvirtd (scripts/provision.sh does both)')
        return ("under qemu:///system QEMU runs as libvirt-qemu and cannot read your interpreter, virtualenv or "
                "project (a 0750 home?): as an ordinary user pass --virt-libvirt-uri=qemu:///session, so QEMU "
                "runs as you")
    return ("QEMU cannot read the interpreter, virtualenv or project it shares with the guest: make them "
            "readable by the user QEMU runs as (under qemu:///session, yourself)")


class BootFailed(Exception):
    def __init__(self, kind: str, message: str, console: str = ""):
        super().__init__(message)
        self.kind = kind  # "hang", "panic", "denied", "died", "cancelled"
        self.console = console


class PrefixedSocketTransport(SocketTransport):
    """A socket whose first bytes were already read while waiting for ``ready``."""

    def __init__(self, sock: socket.socket, prefix: bytes):
        super().__init__(sock)
        self._prefix = prefix

    def read(self, n: int) -> bytes:
        if self._prefix:
            data, self._prefix = self._prefix[:n], self._prefix[n:]
            return data
        return super().read(n)


class VMBackend(Backend):
    kind = "vm"
    option_help = {
        "kernel": "guest kernel image (bzImage/vmlinuz); default: the host's under /boot, else the newest "
                  "/boot/vmlinuz-* with modules (--virt-vm-kernel)",
        "modules": "the guest kernel's modules directory (default /lib/modules/<kernel version>)",
        "kernel_args": "extra guest kernel command line arguments",
        "accel": "auto (KVM if a KVM guest boots here, else TCG), kvm or tcg (--virt-vm-accel; default auto)",
        "uri": "libvirt connection (--virt-libvirt-uri; default qemu:///system as root, else qemu:///session)",
        "machine": "QEMU machine type: pc, q35, ... (default pc)",
        "cpu": "guest CPU mode: maximum (default under TCG: every feature TCG emulates), host-passthrough "
               "(default under KVM), host-model, or default (no <cpu> element: QEMU's qemu64)",
        "vcpus": "guest vCPUs (default: the number of CPUs in the session's CPU set, else 1)",
        "memory": "guest RAM in MiB (default: the session's memory setting)",
        "python": "interpreter the guest runs as the worker (default: the host's own, through 9p)",
        "scratch_size": "size of the scratch disk (ext4, virtio) in MiB (default 1024)",
        "disk_cache": "QEMU cache mode of the scratch disk: none, writeback, writethrough, directsync, unsafe "
                      "(default none: O_DIRECT on the host, so the host's page cache does not flatter the guest)",
        "cache9p": "9p cache mode of the read-only host root: loose (default, fastest), mmap, fscache or none",
        "firmware": "qboot (default where QEMU ships qboot.rom: a minimal firmware that hands over to the "
                    "kernel at once) or bios (SeaBIOS)",
        "elf": "1 (default): boot the PVH ELF extracted from the bzImage (fast); 0: boot the bzImage",
        "boot_timeout": "seconds for a guest to report ready before it counts as hung (default 60, "
                        "bounded by the session's startup timeout)",
        "boot_retries": "boots retried after a silent hang (default 1)",
        "kvm_probe_timeout": "seconds a KVM probe guest (a kernel and an /init that prints one line) gets "
                             "to reach user space under accel=auto before TCG is used instead (default 3; "
                             "the verdict is cached per machine)",
        "prestart": "1 (default): start the worker's interpreter before the start point, from copies of "
                    "the files it opens until it waits (so it is in the saved state); 0: after the mounts",
        "snapshot": "1 (default): start by restoring the guest's saved state at the point before the 9p "
                    "mount (saved by the first start of each configuration); 0: boot every time",
    }

    def __init__(self, spec, ctx):
        super().__init__(spec, ctx)
        self.conn = None
        self.dom_name = domain_mod.domain_name(ctx.session_id, spec.name)
        self.workdir: str | None = None
        self.sock: socket.socket | None = None
        self._meta: dict[str, Any] = {}
        self._console_tail = ""
        self._lost = ""  # why libvirt could not be reached to destroy the domain, if it could not
        self._attempts: list[str] = []
        self.boot_paths: tuple[str, str] | None = None
        self._phases: dict[str, float] = {}
        self._start_mode = ""  # "restored" or "booted"
        self._prestarted = False  # the worker said it was started before the start point
        self._phases_probe: float | None = None
        self._snapshot_note = ""

    # -- options ------------------------------------------------------------

    def _opt(self, key: str, default: Any = None) -> Any:
        value = self.spec.options.get(key)
        return default if value in (None, "") else value

    def _float(self, key: str, default: float) -> float:
        try:
            return float(self._opt(key, default))
        except ValueError:
            raise EnvUnavailable(f"vm option {key}={self._opt(key)!r} is not a number") from None

    def _int(self, key: str, default: int) -> int:
        try:
            return int(self._opt(key, default))
        except ValueError:
            raise EnvUnavailable(f"vm option {key}={self._opt(key)!r} is not an integer") from None

    @property
    def cache_dir(self) -> str:
        base = self.ctx.cache_dir or os.path.join(
            os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "pytest-virtoverhead")
        return os.path.join(base, "vm")

    @property
    def uri(self) -> str:
        return self._opt("uri", default_uri())

    # -- life cycle ---------------------------------------------------------

    def start(self) -> Transport:
        self._stop_quietly()
        self._lost = ""
        t0 = time.monotonic()
        libvirt = _import_libvirt()
        kern = kernel_mod.discover(self._opt("kernel"), self._opt("modules"))
        image = kernel_mod.boot_image(kern, self.cache_dir, prefer_elf=self._opt("elf", "1") not in ("0", "no", "false"))
        python = self._opt("python", self.ctx.python)
        env = {k: os.environ[k] for k in PASS_ENV if k in os.environ}
        env.update({"PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1", "TERM": "dumb"})
        env.setdefault("HOME", "/root")
        env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
        cfg = initramfs.InitConfig(python=python, cwd=self.ctx.rootdir, env=env,
                                   cache9p=self._opt("cache9p", "loose"), scratch_env=SCRATCH_ENV)
        bytecode = precompile_package()  # before the prestart's files are listed and copied
        tree, ps_config, prestart_note = None, None, "disabled (vm option prestart=0)"
        if self._opt("prestart", "1") not in ("0", "no", "false"):
            try:
                found = prestart_mod.discover(python, env, self.cache_dir)
                tree = prestart_mod.tree_for(found)
                ps_config = prestart_mod.config(found, "/newroot", initramfs.START_POINT, initramfs.SCRATCH_MOUNT)
                cfg.prestart, prestart_note = True, f"before the start point ({len(found['files'])} files copied)"
            except (prestart_mod.Unsupported, OSError) as exc:
                prestart_note = f"after the mounts ({exc})"
        try:
            initrd, modules = initramfs.build(kern.modules_dir, cfg, self.cache_dir, prestart_tree=tree,
                                              prestart_config=ps_config)
        except OSError as exc:
            if not cfg.prestart:
                raise
            cfg.prestart, prestart_note = False, f"after the mounts (cannot copy its files: {exc})"
            initrd, modules = initramfs.build(kern.modules_dir, cfg, self.cache_dir)
        self.boot_paths = (image.path, initrd)
        uri = self.uri
        try:
            self.conn = libvirt.open(uri)
        except libvirt.libvirtError as exc:
            raise EnvUnavailable(f"cannot connect to libvirt at {uri}: {exc.get_error_message()}; start libvirtd "
                                 "(as root: scripts/provision.sh, or `libvirtd -d`) or pass --virt-libvirt-uri") from None
        conn = self.conn
        qemu_version = _version(conn.getVersion())
        has_kvm, kvm_detail = True, ""
        try:
            conn.getDomainCapabilities(None, "x86_64", None, "kvm")
        except libvirt.libvirtError as exc:
            has_kvm, kvm_detail = False, exc.get_error_message()
        try:
            choice = accel_mod.choose(self._opt("accel", "auto"), self.cache_dir, qemu_version, has_kvm, kvm_detail)
        except (ValueError, RuntimeError) as exc:
            raise EnvUnavailable(str(exc)) from None
        self.workdir = tempfile.mkdtemp(prefix=f"{WORKDIR_PREFIX}{self.dom_name[len(domain_mod.DOMAIN_PREFIX):]}-")
        os.chmod(self.workdir, 0o755)
        with open(os.path.join(self.workdir, "owner"), "w") as f:
            f.write(self.ctx.labels()[domain_mod_owner_label()])
        vcpus = self._int("vcpus", len(self.ctx.cpus) if self.ctx.cpus else 1)
        memory = self._int("memory", self.ctx.memory_mb)
        cmdline = " ".join(["console=ttyS0", "panic=-1", "rdinit=/init", self._opt("kernel_args", "")]).strip()
        labels = {**self.ctx.labels(), domain_mod.WORKDIR_LABEL: self.workdir,
                  "io.github.pytest-virtoverhead.env": self.spec.name}
        disk_cache = self._opt("disk_cache", "none")
        if disk_cache in ("none", "directsync") and not _odirect_ok(self.workdir):
            disk_cache = "writeback"
        firmware = self._opt("firmware", "qboot")
        if firmware not in ("qboot", "bios"):
            raise EnvUnavailable(f"vm option firmware={firmware!r}: use qboot or bios")
        loader = _qboot_rom() if firmware == "qboot" else None
        dcfg = domain_mod.DomainConfig(
            name=self.dom_name, kernel=image.path, initrd=initrd, cmdline=cmdline,
            console_log=os.path.join(self.workdir, "console.log"),
            worker_socket=os.path.join(self.workdir, "worker.sock"),
            machine=self._opt("machine", "pc"), cpu_mode=self._opt("cpu", None), memory_mb=memory, vcpus=vcpus,
            cpus=self.ctx.cpus,
            scratch_disk=os.path.join(self.workdir, "scratch.img"), disk_cache=disk_cache, labels=labels,
            loader=loader,
            title=f"pytest-virtoverhead session {self.ctx.session_id} environment {self.spec.name}")
        scratch_mb = self._int("scratch_size", 1024)
        boot_timeout = min(self._float("boot_timeout", 60.0), self.ctx.startup_timeout)
        retries = self._int("boot_retries", 1)
        self._attempts = []
        accel, reason = choice.accel, choice.reason
        use_snapshot = self._opt("snapshot", "1") not in ("0", "no", "false")
        self._snapshot_note = "disabled (vm option snapshot=0)" if not use_snapshot else ""
        try:
            if choice.probe:
                probe_timeout = min(self._float("kvm_probe_timeout", accel_mod.PROBE_TIMEOUT), boot_timeout)
                key = accel_mod.machine_key(qemu_version)
                works, detail = self._probe_kvm(libvirt, dcfg, probe_timeout)
                accel_mod.save_verdict(self.cache_dir, key, works, detail)
                if works:
                    reason = f"auto: {detail} (probed now)"
                else:
                    accel, reason = "tcg", f"auto: {detail} (probed now); fell back to TCG"
            state = self._state_path(dcfg, accel, image.path, qemu_version, conn) if use_snapshot else None
            sock = None
            while sock is None:
                try:
                    sock, prefix, boot_s = self._boot(libvirt, dcfg, accel, boot_timeout, scratch_mb, state)
                except BootFailed as exc:
                    if exc.kind == "restore":
                        snapshot_mod.discard(state)
                        self._snapshot_note = f"restore failed, booted instead ({exc}); the saved state was removed"
                        state = None
                        continue
                    if exc.kind == "hang" and retries > 0:
                        retries -= 1
                        continue
                    raise
        except BootFailed as exc:
            console = exc.console
            self._console_tail = console
            self._stop_quietly()
            if exc.kind == "cancelled":
                raise EnvUnavailable(f"the VM was not started: {exc}") from None
            if exc.kind == "denied":
                raise EnvUnavailable(f"{exc}: {permission_fix(uri)}\n--- guest console (tail) ---\n{console}"
                                     ) from None
            hint = ""
            if accel == "kvm" and exc.kind == "hang":
                hint = ("; a KVM guest that hangs in early boot usually means nested virtualization does not "
                        "work here: use --virt-vm-accel=tcg or auto.")
            if not console.strip():
                console = "(empty: the guest kernel printed nothing)"
            raise EnvUnavailable(f"the VM guest did not start its worker: {exc}{hint} "
                                 f"(attempts: {'; '.join(self._attempts)})\n--- guest console (tail) ---\n{console}"
                                 ) from None
        except BaseException:
            self._stop_quietly()
            raise
        self.sock = sock
        live_machine = dcfg.machine
        try:
            m = re.search(r"<type[^>]*machine='([^']+)'", conn.lookupByName(self.dom_name).XMLDesc())
            live_machine = m.group(1) if m else live_machine
        except libvirt.libvirtError:
            pass
        self._meta = {
            "accel": accel, "accel_reason": reason, "vcpus": vcpus, "memory_mb": memory,
            "machine": live_machine, "qemu_version": qemu_version,
            "libvirt_version": _version(conn.getLibVersion()), "libvirt_uri": uri,
            "guest_kernel": kern.path, "guest_kernel_version": kern.version, "kernel_source": kern.source,
            "boot_image": image.format, "boot_image_reason": image.reason, "boot_seconds": round(boot_s, 3),
            "boot_attempts": list(self._attempts), "setup_seconds": round(time.monotonic() - t0 - boot_s, 3),
            "domain": self.dom_name, "cpus_pinned": list(self.ctx.cpus) if self.ctx.cpus else None,
            "firmware": "qboot" if loader else "bios",
            "scratch": f"virtio disk, ext4, {scratch_mb} MiB, cache={disk_cache}",
            "share": f"host / over 9p read-only (cache={cfg.cache9p})", "nic": None,
            "boot_phases": dict(self._phases), "start_mode": self._start_mode,
            "kvm_probe_seconds": self._phases_probe,
            "snapshot": self._snapshot_note, "initramfs_modules": modules, "kernel_cmdline": cmdline, "package_bytecode": bytecode,
            "interpreter_start": prestart_note if self._prestarted or not cfg.prestart else
            "after the mounts (the guest could not start it before the start point: see the console of the "
            "boot that saved the state)",
        }
        return PrefixedSocketTransport(sock, prefix)

    def _destroy_domain(self, libvirt) -> None:
        if self.conn is None:
            return
        try:
            dom = self.conn.lookupByName(self.dom_name)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                self._lost = (
                    f"cannot reach libvirt at {self.uri} to destroy domain {self.dom_name} "
                    f"({exc.get_error_message()}): libvirtd stopped or restarted, or the connection broke. "
                    "If libvirtd still runs, it destroyed the guest with the connection (AUTODESTROY); "
                    "otherwise the guest runs until libvirtd is back, and the next session removes it")
                self._destroy_over_new_connection(libvirt)
            return
        try:
            persistent = dom.isPersistent()
        except libvirt.libvirtError:
            persistent = False
        try:
            dom.destroy()
        except libvirt.libvirtError:
            pass
        if persistent:
            try:
                dom.undefine()
            except libvirt.libvirtError:
                pass

    def _destroy_over_new_connection(self, libvirt) -> None:
        """The session's connection broke but libvirtd may still run (its
        AUTODESTROY then removes the guest, but not always at once): destroy
        the domain over a new connection, best effort, so nothing is left."""
        try:
            conn = libvirt.open(self.uri)
        except libvirt.libvirtError:
            return
        try:
            dom = conn.lookupByName(self.dom_name)
            dom.destroy()
            if dom.isPersistent():
                dom.undefine()
        except libvirt.libvirtError:
            pass
        finally:
            try:
                conn.close()
            except libvirt.libvirtError:
                pass

    def _console(self, limit: int = 6000) -> str:
        if not self.workdir:
            return self._console_tail
        try:
            with open(os.path.join(self.workdir, "console.log"), "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - limit))
                return f.read().decode("utf-8", "replace")
        except OSError:
            return self._console_tail

    def _state_path(self, dcfg: domain_mod.DomainConfig, accel: str, kernel: str, qemu_version: str,
                    conn) -> str:
        """Where the saved state of this configuration is (or will be)."""
        import dataclasses

        generic = dataclasses.replace(dcfg, name="virtoverhead-state", console_log="/console", worker_socket="/worker",
                                      scratch_disk="/scratch" if dcfg.scratch_disk else None, labels={}, title="",
                                      cpus=None, accel=accel, incoming=False)
        try:
            st = os.stat(kernel)
            kstamp = f"{kernel}:{st.st_size}:{st.st_mtime_ns}"
        except OSError:
            kstamp = kernel
        parts = [kstamp, dcfg.initrd, f"qemu {qemu_version}", f"libvirt {conn.getLibVersion()}",
                 f"scratch {self._int('scratch_size', 1024)}"]
        if accel == "kvm":
            parts.append(accel_mod.machine_key(qemu_version))  # KVM state depends on the host CPU
        return snapshot_mod.state_path(self.cache_dir, snapshot_mod.key(domain_mod.build_xml(generic), parts))

    def _probe_kvm(self, libvirt, dcfg: domain_mod.DomainConfig, timeout: float) -> tuple[bool, str]:
        """Does a KVM guest reach user space here? A guest of the kernel and
        a busybox /init that prints one line before any module loads: under
        KVM that takes well under a second; where nested virtualization
        does not work the guest hangs in early boot. Returns (works, why)."""
        import dataclasses

        probe = dataclasses.replace(
            dcfg, name=self.dom_name + "-kvmprobe", initrd=initramfs.build_probe(self.cache_dir),
            console_log=os.path.join(self.workdir, "probe-console.log"),
            worker_socket=os.path.join(self.workdir, "probe.sock"), scratch_disk=None, accel="kvm",
            incoming=False, genid=False, memory_mb=min(dcfg.memory_mb, 256))
        t0 = time.monotonic()
        try:
            dom = self.conn.createXML(domain_mod.build_xml(probe), libvirt.VIR_DOMAIN_START_AUTODESTROY)
        except libvirt.libvirtError as exc:
            self._attempts.append("kvm probe: QEMU could not start it")
            self._phases_probe = round(time.monotonic() - t0, 3)
            return False, (f"QEMU could not start a KVM guest ({_first_error(exc.get_error_message())}; "
                           "nested virtualization that does not work?)")
        started = time.monotonic()
        try:
            while True:
                try:
                    with open(probe.console_log, "rb") as f:
                        console = f.read().decode("utf-8", "replace")
                except OSError:
                    console = ""
                elapsed = time.monotonic() - started
                if initramfs.PROBE_MARKER in console:
                    self._attempts.append(f"kvm probe: user space in {elapsed:.2f} s")
                    return True, f"a KVM guest reached user space in {elapsed:.2f} s"
                if FATAL_CONSOLE.search(console):
                    self._attempts.append("kvm probe: panic")
                    return False, f"a KVM guest panicked: {FATAL_CONSOLE.search(console).group(0).strip()}"
                try:
                    active = dom.isActive()
                except libvirt.libvirtError:
                    active = False
                if not active:
                    self._attempts.append("kvm probe: ended early")
                    return False, "a KVM guest ended before reaching user space"
                if self.cancelled.is_set():
                    raise BootFailed("cancelled", "KVM probe abandoned: the session is ending (interrupted)")
                if elapsed > timeout:
                    printed = "printed nothing" if not console.strip() else "stopped before user space"
                    self._attempts.append(f"kvm probe: hang ({printed})")
                    return False, (f"a KVM guest did not reach user space within {timeout:g} s (its kernel "
                                   f"{printed}; nested virtualization does not work here?)")
                time.sleep(0.02)
        finally:
            try:
                dom.destroy()
            except libvirt.libvirtError:
                pass
            self._phases_probe = round(time.monotonic() - t0, 3)

    def _boot(self, libvirt, dcfg: domain_mod.DomainConfig, accel: str, timeout: float, scratch_mb: int,
              state: str | None = None):
        """Boot once, or restore the saved state ``state`` if that file
        exists (and save it at the start point if it does not); return
        (socket, bytes read so far, seconds to ready) or raise BootFailed."""
        from ...protocol import FrameDecoder

        if self.cancelled.is_set():
            raise BootFailed("cancelled", "not booted: the session is ending")
        self._destroy_domain(libvirt)
        for path in (dcfg.console_log, dcfg.worker_socket, dcfg.scratch_disk):
            try:
                os.unlink(path)
            except OSError:
                pass
        make_scratch(dcfg.scratch_disk, scratch_mb)
        restoring = bool(state) and os.path.isfile(state)
        dcfg.accel = accel
        dcfg.incoming = restoring
        xml = domain_mod.build_xml(dcfg)
        t0 = time.monotonic()
        label = f"{accel}: " + ("restore: " if restoring else "")
        try:
            # AUTODESTROY: if this process dies, its libvirt connection closes
            # and libvirtd destroys the guest at once (reap() is the backstop).
            dom = self.conn.createXML(xml, libvirt.VIR_DOMAIN_START_PAUSED | libvirt.VIR_DOMAIN_START_AUTODESTROY)
        except libvirt.libvirtError as exc:
            self._attempts.append(label + "libvirt refused the domain")
            if restoring:
                raise BootFailed("restore", f"libvirt could not create the domain: {exc.get_error_message()}") from exc
            raise BootFailed("died", f"libvirt could not create the domain: {exc.get_error_message()}") from exc
        self._phases = phases = {"created": round(time.monotonic() - t0, 3)}
        if restoring:
            try:
                snapshot_mod.restore(dom, state, timeout=min(timeout, 60.0))
            except snapshot_mod.SnapshotError as exc:
                self._destroy_domain(libvirt)
                self._attempts.append(label + f"failed ({exc})")
                raise BootFailed("restore", str(exc)) from exc
            phases["restored"] = round(time.monotonic() - t0, 3)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(dcfg.worker_socket)
            dom.resume()
        except (OSError, libvirt.libvirtError) as exc:
            sock.close()
            self._destroy_domain(libvirt)
            self._attempts.append(label + "no worker socket")
            raise BootFailed("died", f"cannot connect to the guest's serial socket: {exc}") from exc
        phases["resumed"] = round(time.monotonic() - t0, 3)
        decoder = FrameDecoder()
        received = bytearray()
        marker = initramfs.START_POINT.encode()
        waiting = not restoring  # for the start point; a restored guest waits there already
        if restoring:
            self._go(sock)
            self._start_mode = "restored"
            self._snapshot_note = f"restored ({state})"
        sock.settimeout(0.02)
        deadline = t0 + timeout
        console_seen = 0
        failure: BootFailed | None = None
        while failure is None:
            try:
                data = sock.recv(65536)
                if not data:
                    failure = BootFailed("died", "the guest ended before its worker was ready")
                    break
                received += data
                if waiting and received.find(marker) >= 0:
                    waiting = False
                    phases["start point"] = round(time.monotonic() - t0, 3)
                    del received[:received.find(marker) + len(marker)]
                    data = bytes(received)
                    if state:
                        self._save_state(dom, state, phases, t0)
                    self._go(sock)
                    self._start_mode = "booted"
                ready = [] if waiting else [m for m in decoder.feed(data)
                                            if isinstance(m, dict) and m.get("event") == "ready"]
                if ready:
                    self._prestarted = bool(ready[0].get("prestarted"))
                    sock.settimeout(None)
                    elapsed = time.monotonic() - t0
                    self._note_phases(phases, elapsed)
                    phases["ready"] = round(elapsed, 3)
                    self._attempts.append(label + f"ready in {elapsed:.2f} s")
                    return sock, bytes(received), elapsed
            except socket.timeout:
                pass
            except OSError as exc:
                failure = BootFailed("died", f"the worker socket failed: {exc}")
                break
            if self.cancelled.is_set():
                failure = BootFailed("cancelled", "boot abandoned: the session is ending (interrupted)")
                break
            console = self._console(1 << 20)
            if len(console) != console_seen:
                console_seen = len(console)
                self._note_phases(phases, time.monotonic() - t0, console)
                if FATAL_CONSOLE.search(console):
                    failure = BootFailed("panic", "")
            if failure is None and time.monotonic() > deadline:
                failure = BootFailed("hang", f"no ready from the worker within {timeout:g} s")
        sock.close()
        time.sleep(0.3)  # let the panic trace reach the console log
        self._destroy_domain(libvirt)
        failure = self._classify(failure)
        failure.console = self._console(4000)
        self._attempts.append(label + failure.kind)
        raise failure

    @staticmethod
    def _go(sock: socket.socket) -> None:
        """The host's answer at the start point: wall clock and entropy."""
        import secrets

        sock.sendall(f"go {round(time.time())} {secrets.token_hex(32)}\n".encode())

    def _save_state(self, dom, state: str, phases: dict[str, float], t0: float) -> None:
        """Save the guest at its start point for later starts (a failure
        only costs later starts their speed: it is noted, not raised)."""
        try:
            size = snapshot_mod.save(dom, state)
        except (snapshot_mod.SnapshotError, OSError) as exc:
            self._snapshot_note = f"not saved ({exc}); every start boots"
            return
        phases["saved"] = round(time.monotonic() - t0, 3)
        self._snapshot_note = f"saved now ({size / 1e6:.0f} MB, {state})"

    def _note_phases(self, phases: dict[str, float], elapsed: float, console: str | None = None) -> None:
        """Host time (seconds since the domain was created) at which the
        console first showed the kernel and each step of /init (to within
        the ~0.1 s poll): where a boot's time goes (benchmarks/vm_boot.py)."""
        console = self._console(1 << 20) if console is None else console
        if console.strip():
            phases.setdefault("kernel", round(elapsed, 3))
        for m in INIT_STEP.finditer(console):
            phases.setdefault(m.group(1), round(elapsed, 3))

    def _classify(self, failure: BootFailed) -> BootFailed:
        """Say what the console says: a panic, a failed init step, Permission denied."""
        console = self._console(1 << 20)
        fatal = FATAL_CONSOLE.search(console)
        if fatal and DENIED_CONSOLE.search(console):
            denied = DENIED_CONSOLE.search(console).group(0).strip()
            return BootFailed("denied", f"the guest could not run the worker: {denied}")
        if fatal:
            text = f"the guest reported: {fatal.group(0).strip()}"
            if failure.kind == "hang":
                text = f"{failure}; {text}"
            return BootFailed("hang" if failure.kind == "hang" else "panic", text)
        return failure

    def _stop_quietly(self) -> None:
        """stop() on a start's own paths: its errors must not hide the first."""
        try:
            self.stop()
        except EnvError:
            pass

    def stop(self) -> None:
        """Destroy the domain and remove its work directory (idempotent).
        Raises EnvError, after removing what it can, when libvirt could not
        be reached to destroy the domain."""
        lost_before = self._lost
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None
        if self.conn is not None:
            try:
                libvirt = _import_libvirt()
                self._destroy_domain(libvirt)
            except EnvUnavailable:
                pass
        if self.workdir:
            tail = self._console(4000)
            if tail:
                self._console_tail = tail
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:  # noqa: BLE001
                pass
            self.conn = None
        if self._lost and self._lost != lost_before:
            raise EnvError(self._lost)

    def metadata(self) -> dict[str, Any]:
        return dict(self._meta)

    guest_view = True  # the worker's /proc/meminfo is the guest kernel's (issue 16)

    def footprint_sample(self) -> dict[str, Any]:
        from .. import vmfootprint
        return vmfootprint.sample(self)

    def footprint_storage(self) -> dict[str, Any]:
        from .. import vmfootprint
        return vmfootprint.storage(self)

    def diagnostics(self) -> str:
        tail = self._console(4000)
        parts = [self._lost] if self._lost else []
        parts.append(f"domain {self.dom_name} ({self.uri})")
        if self._attempts:
            parts.append("boot attempts: " + "; ".join(self._attempts))
        if tail.strip():
            parts.append("guest console (tail):\n" + tail)
        return "\n".join(parts)

    @classmethod
    def reap(cls, ctx: RunContext) -> list[str]:
        """Destroy domains (and their work directories) of dead sessions."""
        removed: list[str] = []
        try:
            libvirt = _import_libvirt()
            conn = libvirt.open(default_uri())
        except Exception:  # noqa: BLE001 - nothing to reap without libvirt
            conn = None
        if conn is not None:
            try:
                for dom in conn.listAllDomains(0):
                    name = dom.name()
                    if not name.startswith(domain_mod.DOMAIN_PREFIX):
                        continue
                    try:
                        xml = dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, domain_mod.METADATA_NS)
                    except libvirt.libvirtError:
                        continue  # not ours: no labels
                    labels = domain_mod.parse_metadata(xml)
                    owner = labels.get(domain_mod_owner_label())
                    if not owner or owner_alive(owner, ctx.hostname):
                        continue
                    try:
                        persistent = dom.isPersistent()
                        if dom.isActive():
                            dom.destroy()
                        if persistent:
                            dom.undefine()
                    except libvirt.libvirtError:
                        continue
                    removed.append(f"vm domain {name}")
                    workdir = labels.get(domain_mod.WORKDIR_LABEL)
                    if workdir and _is_our_workdir(workdir):
                        shutil.rmtree(workdir, ignore_errors=True)
            finally:
                conn.close()
        # Work directories whose domain is already gone.
        tmp = tempfile.gettempdir()
        try:
            names = os.listdir(tmp)
        except OSError:
            names = []
        for name in names:
            path = os.path.join(tmp, name)
            if not name.startswith(WORKDIR_PREFIX) or not _is_our_workdir(path):
                continue
            try:
                with open(os.path.join(path, "owner")) as f:
                    owner = f.read().strip()
            except OSError:
                continue
            if owner and not owner_alive(owner, ctx.hostname):
                shutil.rmtree(path, ignore_errors=True)
                removed.append(f"vm work directory {path}")
        return removed


def domain_mod_owner_label() -> str:
    from ..base import OWNER_LABEL

    return OWNER_LABEL


def _first_error(message: str, limit: int = 160) -> str:
    """The telling line of a libvirt error that quotes QEMU's stderr (which
    also has deprecation warnings and timestamps)."""
    lines = [re.sub(r"^\S+Z qemu-system-\S+: ", "", ln).strip() for ln in message.splitlines()]
    telling = [ln for ln in lines if re.search(r"error|fail|cannot|denied", ln, re.I)
               and "deprecated" not in ln] or lines
    text = telling[0] if telling else message
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _qboot_rom() -> str | None:
    for path in ("/usr/share/qemu/qboot.rom", "/usr/share/qemu/qboot.bin", "/usr/share/seabios/qboot.rom"):
        if os.path.isfile(path):
            return path
    return None


def _is_our_workdir(path: str) -> bool:
    path = os.path.realpath(path)
    return (os.path.dirname(path) == os.path.realpath(tempfile.gettempdir())
            and os.path.basename(path).startswith(WORKDIR_PREFIX) and os.path.isdir(path))


def _odirect_ok(directory: str) -> bool:
    """Can QEMU open a file here with O_DIRECT (cache=none)? tmpfs cannot."""
    path = os.path.join(directory, ".odirect-probe")
    try:
        fd = os.open(path, os.O_CREAT | os.O_RDWR | getattr(os, "O_DIRECT", 0), 0o600)
        os.close(fd)
        return True
    except OSError:
        return False
    finally:
        try:
            os.unlink(path)
        except OSError:
            pass


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


def make_scratch(path: str, size_mb: int) -> None:
    """A sparse raw image formatted ext4 on the host (fully initialised, so
    the guest runs no lazy-init thread during measurements)."""
    mkfs = shutil.which("mkfs.ext4") or next(
        (p for p in ("/sbin/mkfs.ext4", "/usr/sbin/mkfs.ext4") if os.path.exists(p)), None)
    if mkfs is None:
        raise EnvUnavailable("mkfs.ext4 is missing on the host (it formats the VM's scratch disk): "
                             "`apt-get install e2fsprogs`")
    with open(path, "wb") as f:
        f.truncate(size_mb * 1024 * 1024)
    os.chmod(path, 0o644)
    proc = subprocess.run([mkfs, "-F", "-q", "-m", "0", "-L", "vo-scratch",
                           "-E", "lazy_itable_init=0,lazy_journal_init=0", path],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        raise EnvUnavailable(f"cannot format the VM scratch disk with {mkfs}: {proc.stdout.strip()}")
