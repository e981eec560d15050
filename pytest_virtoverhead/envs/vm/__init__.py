"""The ``vm`` kind: the worker inside a libvirt/QEMU guest.

A transient libvirt domain boots the guest kernel directly (its PVH ELF image,
extracted once from the bzImage and cached) with a busybox initramfs that
mounts the host's root read-only over 9p and runs the host's own interpreter
as the worker on the guest's second serial port, a unix socket on the host.
One guest per environment per session; many jobs over that one channel.

:class:`VMBackend` holds the options and does a start in named steps; the
boots are in :mod:`.boot`, libvirt in :mod:`.connect`, the guest's host
files in :mod:`.workdir`. libvirt-python is imported only when a VM is
started (or reaped), so the plugin loads where it is absent. docs/vms.md.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from ...fsutil import default_cache_dir
from ...wire.envvars import SCRATCH_ENV
from ..base import OWNER_LABEL, Backend, RunContext, host_env
from ..channel import Transport
from ..errors import EnvError, EnvUnavailable
from . import (
    accel as accel_mod,
    domain as domain_mod,
    footprint as vm_footprint,
    initramfs,
    kernel as kernel_mod,
    prestart as prestart_mod,
    snapshot as snapshot_mod,
    workdir as workdir_mod,
)
from .boot import Booter, BootFailed, BootLog, PrefixedSocketTransport
from .connect import (
    default_uri,
    destroy,
    destroy_over_new_connection,
    import_libvirt,
    permission_fix,
    reap_domains,
    uninterrupted,
    version_string,
)

__all__ = ["VMBackend"]

#: Environment variables carried from the host into the guest besides the
#: common ones (``base.PASS_ENV``).
PASS_ENV_EXTRA = ("HOME", "PYTHONDEVMODE")


def _enabled(value: str) -> bool:
    return value not in ("0", "no", "false")


@dataclass
class _Start:
    """What one start chose, step by step: its metadata is made of it."""

    t0: float
    kernel: kernel_mod.GuestKernel = field(init=False)
    image: kernel_mod.BootImage = field(init=False)
    init: initramfs.InitConfig = field(init=False)
    initrd: str = ""
    modules: list[str] = field(default_factory=list)
    bytecode: str = ""
    prestart_note: str = ""
    qemu_version: str = ""
    accel: str = ""
    reason: str = ""
    boot_seconds: float = 0.0


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

    def allow_cpus(self, cpus: tuple[int, ...] | None) -> bool:
        return False  # the guest's processes run on its vCPUs
    def __init__(self, spec, ctx):
        super().__init__(spec, ctx)
        self.conn = None
        self.dom_name = domain_mod.domain_name(ctx.session_id, spec.name)
        self.workdir: str | None = None
        self.sock: socket.socket | None = None
        self._meta: dict[str, Any] = {}
        self._console_tail = ""
        self._lost = ""  # why libvirt could not be reached to destroy the domain, if it could not
        self.boot_paths: tuple[str, str] | None = None
        self.log = BootLog()
        self._qemu_pid: int | None = None

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
        return os.path.join(self.ctx.cache_dir or default_cache_dir(), "vm")

    @property
    def uri(self) -> str:
        return self._opt("uri", default_uri())

    # -- a start, step by step -------------------------------------------------

    def start(self) -> Transport:
        self._stop_quietly()
        self._lost = ""
        st = _Start(t0=time.monotonic())
        libvirt = import_libvirt()
        self._resolve_kernel(st)
        self._build_initramfs(st)
        self.boot_paths = (st.image.path, st.initrd)
        conn = self._connect(libvirt)
        st.qemu_version = version_string(conn.getVersion())
        choice = self._choose_accel(libvirt, conn, st.qemu_version)
        self.workdir = workdir = workdir_mod.create(self.dom_name[len(domain_mod.DOMAIN_PREFIX):],
                                                    self.ctx.labels()[OWNER_LABEL])
        dcfg = self._domain_config(st, workdir)
        sock, prefix = self._restore_or_boot(libvirt, dcfg, choice, st, workdir)
        self.sock = sock
        self._meta = self._start_metadata(libvirt, dcfg, st)
        return PrefixedSocketTransport(sock, prefix)

    def _resolve_kernel(self, st: _Start) -> None:
        """The guest kernel, and the image QEMU boots (its PVH ELF, if it can)."""
        st.kernel = kernel_mod.discover(self._opt("kernel"), self._opt("modules"))
        st.image = kernel_mod.boot_image(st.kernel, self.cache_dir, prefer_elf=_enabled(self._opt("elf", "1")))

    def _build_initramfs(self, st: _Start) -> None:
        """The guest's /init configuration and its (cached) initramfs, with the
        interpreter's start files when it can be started before the start point."""
        python = self._opt("python", self.ctx.python)
        env = host_env(*PASS_ENV_EXTRA)
        env.update({"PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1", "TERM": "dumb"})
        env.setdefault("HOME", "/root")
        env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
        st.init = cfg = initramfs.InitConfig(python=python, env=env,
                                             cache9p=self._opt("cache9p", "loose"), scratch_env=SCRATCH_ENV)
        st.bytecode = prestart_mod.precompile_package()  # before the prestart's files are listed and copied
        tree, ps_config, st.prestart_note = None, None, "disabled (vm option prestart=0)"
        if _enabled(self._opt("prestart", "1")):
            try:
                found = prestart_mod.discover(python, env, self.cache_dir)
                tree = prestart_mod.tree_for(found)
                ps_config = prestart_mod.config(found, "/newroot", initramfs.START_POINT, initramfs.SCRATCH_MOUNT)
                cfg.prestart, st.prestart_note = True, f"before the start point ({len(found['files'])} files copied)"
            except (prestart_mod.Unsupported, OSError) as exc:
                st.prestart_note = f"after the mounts ({exc})"
        try:
            st.initrd, st.modules = initramfs.build(st.kernel.modules_dir, cfg, self.cache_dir, prestart_tree=tree,
                                                    prestart_config=ps_config)
        except OSError as exc:
            if not cfg.prestart:
                raise
            cfg.prestart, st.prestart_note = False, f"after the mounts (cannot copy its files: {exc})"
            st.initrd, st.modules = initramfs.build(st.kernel.modules_dir, cfg, self.cache_dir)

    def _connect(self, libvirt):
        uri = self.uri
        try:
            self.conn = libvirt.open(uri)
        except libvirt.libvirtError as exc:
            raise EnvUnavailable(f"cannot connect to libvirt at {uri}: {exc.get_error_message()}; start libvirtd "
                                 "(as root: scripts/provision.sh, or `libvirtd -d`) or pass --virt-libvirt-uri") from None
        return self.conn

    def _choose_accel(self, libvirt, conn, qemu_version: str) -> accel_mod.AccelChoice:
        has_kvm, kvm_detail = True, ""
        try:
            conn.getDomainCapabilities(None, "x86_64", None, "kvm")
        except libvirt.libvirtError as exc:
            has_kvm, kvm_detail = False, exc.get_error_message()
        try:
            return accel_mod.choose(self._opt("accel", "auto"), self.cache_dir, qemu_version, has_kvm, kvm_detail)
        except (ValueError, RuntimeError) as exc:
            raise EnvUnavailable(str(exc)) from None

    def _domain_config(self, st: _Start, workdir: str) -> domain_mod.DomainConfig:
        """The domain of this start, its files in the work directory."""
        vcpus = self._int("vcpus", len(self.ctx.cpus) if self.ctx.cpus else 1)
        memory = self._int("memory", self.ctx.memory_mb)
        cmdline = " ".join(["console=ttyS0", "panic=-1", "rdinit=/init", self._opt("kernel_args", "")]).strip()
        labels = {**self.ctx.labels(), domain_mod.WORKDIR_LABEL: workdir,
                  "io.github.pytest-virtoverhead.env": self.spec.name}
        disk_cache = self._opt("disk_cache", "none")
        if disk_cache in ("none", "directsync") and not workdir_mod.odirect_ok(workdir):
            disk_cache = "writeback"
        firmware = self._opt("firmware", "qboot")
        if firmware not in ("qboot", "bios"):
            raise EnvUnavailable(f"vm option firmware={firmware!r}: use qboot or bios")
        loader = domain_mod.qboot_rom() if firmware == "qboot" else None
        return domain_mod.DomainConfig(
            name=self.dom_name, kernel=st.image.path, initrd=st.initrd, cmdline=cmdline,
            console_log=os.path.join(workdir, "console.log"),
            worker_socket=os.path.join(workdir, "worker.sock"),
            machine=self._opt("machine", "pc"), cpu_mode=self._opt("cpu", None), memory_mb=memory, vcpus=vcpus,
            cpus=self.ctx.cpus,
            scratch_disk=os.path.join(workdir, "scratch.img"), disk_cache=disk_cache, labels=labels,
            loader=loader,
            title=f"pytest-virtoverhead session {self.ctx.session_id} environment {self.spec.name}")

    def _restore_or_boot(self, libvirt, dcfg: domain_mod.DomainConfig, choice: accel_mod.AccelChoice,
                         st: _Start, workdir: str) -> tuple[socket.socket, bytes]:
        """Probe KVM if the choice asks, then restore the saved state of this
        configuration or boot (once more after a silent hang); on failure,
        stop everything and raise EnvUnavailable saying why."""
        scratch_mb = self._int("scratch_size", 1024)
        boot_timeout = min(self._float("boot_timeout", 60.0), self.ctx.startup_timeout)
        retries = self._int("boot_retries", 1)
        self.log.attempts = []
        st.accel, st.reason = choice.accel, choice.reason
        use_snapshot = _enabled(self._opt("snapshot", "1"))
        self.log.snapshot = "disabled (vm option snapshot=0)" if not use_snapshot else ""
        booter = Booter(libvirt, self.conn, self.log, self._console, lambda: self._destroy_domain(libvirt),
                        self.cancelled, cwd=self.ctx.rootdir)
        try:
            if choice.probe:
                probe_timeout = min(self._float("kvm_probe_timeout", accel_mod.PROBE_TIMEOUT), boot_timeout)
                key = accel_mod.machine_key(st.qemu_version)
                works, detail = booter.probe_kvm(dcfg, workdir, self.cache_dir, probe_timeout)
                accel_mod.save_verdict(self.cache_dir, key, works, detail)
                if works:
                    st.reason = f"auto: {detail} (probed now)"
                else:
                    st.accel, st.reason = "tcg", f"auto: {detail} (probed now); fell back to TCG"
            state = snapshot_mod.path_for(self.cache_dir, dcfg, st.accel, st.qemu_version, self.conn.getLibVersion(),
                                          scratch_mb) if use_snapshot else None
            while True:
                try:
                    sock, prefix, st.boot_seconds = booter.boot(dcfg, st.accel, boot_timeout, scratch_mb, state)
                    return sock, prefix
                except BootFailed as exc:
                    if exc.kind == "restore":
                        snapshot_mod.discard(state)
                        self.log.snapshot = f"restore failed, booted instead ({exc}); the saved state was removed"
                        state = None
                        continue
                    if exc.kind == "hang" and retries > 0:
                        retries -= 1
                        continue
                    raise
        except BootFailed as exc:
            raise self._unavailable(exc, st.accel) from None
        except BaseException:
            self._stop_quietly()
            raise

    def _unavailable(self, exc: BootFailed, accel: str) -> EnvUnavailable:
        """Stop everything after a failed boot; say why, with the console."""
        console = exc.console
        self._console_tail = console
        self._stop_quietly()
        if exc.kind == "cancelled":
            return EnvUnavailable(f"the VM was not started: {exc}")
        if exc.kind == "denied":
            return EnvUnavailable(f"{exc}: {permission_fix(self.uri)}\n--- guest console (tail) ---\n{console}")
        hint = ""
        if accel == "kvm" and exc.kind == "hang":
            hint = ("; a KVM guest that hangs in early boot usually means nested virtualization does not "
                    "work here: use --virt-vm-accel=tcg or auto.")
        if not console.strip():
            console = "(empty: the guest kernel printed nothing)"
        return EnvUnavailable(f"the VM guest did not start its worker: {exc}{hint} "
                              f"(attempts: {'; '.join(self.log.attempts)})\n--- guest console (tail) ---\n{console}")

    def _start_metadata(self, libvirt, dcfg: domain_mod.DomainConfig, st: _Start) -> dict[str, Any]:
        conn = self.conn
        live_machine = dcfg.machine
        try:
            m = re.search(r"<type[^>]*machine='([^']+)'", conn.lookupByName(self.dom_name).XMLDesc())
            live_machine = m.group(1) if m else live_machine
        except libvirt.libvirtError:
            pass
        kern, image, boot_s = st.kernel, st.image, st.boot_seconds
        return {
            "accel": st.accel, "accel_reason": st.reason, "vcpus": dcfg.vcpus, "memory_mb": dcfg.memory_mb,
            "machine": live_machine, "qemu_version": st.qemu_version,
            "libvirt_version": version_string(conn.getLibVersion()), "libvirt_uri": self.uri,
            "guest_kernel": kern.path, "guest_kernel_version": kern.version, "kernel_source": kern.source,
            "boot_image": image.format, "boot_image_reason": image.reason, "boot_seconds": round(boot_s, 3),
            "boot_attempts": list(self.log.attempts), "setup_seconds": round(time.monotonic() - st.t0 - boot_s, 3),
            "domain": self.dom_name, "cpus_pinned": list(self.ctx.cpus) if self.ctx.cpus else None,
            "firmware": "qboot" if dcfg.loader else "bios",
            "scratch": f"virtio disk, ext4, {self._int('scratch_size', 1024)} MiB, cache={dcfg.disk_cache}",
            "share": f"host / over 9p read-only (cache={st.init.cache9p})", "nic": None,
            "boot_phases": dict(self.log.phases), "start_mode": self.log.start_mode,
            "kvm_probe_seconds": self.log.probe_seconds,
            "snapshot": self.log.snapshot, "initramfs_modules": st.modules, "kernel_cmdline": dcfg.cmdline,
            "package_bytecode": st.bytecode,
            "interpreter_start": st.prestart_note if self.log.prestarted or not st.init.prestart else
            "after the mounts (the guest could not start it before the start point: see the console of the "
            "boot that saved the state)",
        }

    # -- the domain -----------------------------------------------------------

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
                destroy_over_new_connection(libvirt, self.uri, self.dom_name)
            return
        destroy(libvirt, dom)

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
                libvirt = import_libvirt()
                uninterrupted(lambda: self._destroy_domain(libvirt))
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

    guest_view = True  # the worker's /proc/meminfo is the guest kernel's

    def footprint_sample(self) -> dict[str, Any]:
        if self.sock is None:
            return {}
        self._qemu_pid = vm_footprint.qemu_pid(self.dom_name, self._qemu_pid)
        return {} if self._qemu_pid is None else vm_footprint.sample(self._qemu_pid)

    def footprint_storage(self) -> dict[str, Any]:
        note = str((self._meta or {}).get("snapshot") or self.log.snapshot)
        return vm_footprint.storage(self.boot_paths, self.workdir, note)

    def diagnostics(self) -> str:
        tail = self._console(4000)
        parts = [self._lost] if self._lost else []
        parts.append(f"domain {self.dom_name} ({self.uri})")
        if self.log.attempts:
            parts.append("boot attempts: " + "; ".join(self.log.attempts))
        if tail.strip():
            parts.append("guest console (tail):\n" + tail)
        return "\n".join(parts)

    @classmethod
    def reap(cls, ctx: RunContext) -> list[str]:
        """Destroy domains (and their work directories) of dead sessions."""
        removed: list[str] = []
        for name, workdir in reap_domains(ctx.hostname):
            removed.append(f"vm domain {name}")
            if workdir and workdir_mod.is_ours(workdir):
                shutil.rmtree(workdir, ignore_errors=True)
        # Work directories whose domain is already gone.
        return removed + workdir_mod.reap(ctx.hostname)
