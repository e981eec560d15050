"""The libvirt side of a VM: libvirt-python imported lazily, the default
connection URI, version numbers, the telling line of an error, destroying a
domain, removing the domains of dead sessions, and what to fix when QEMU
cannot read the files it shares with the guest.

libvirt-python is imported only when a VM is started (or reaped), so the
plugin loads where it is absent.
"""

from __future__ import annotations

import os
import re
import signal
import threading
from typing import Callable

from ..base import OWNER_LABEL, owner_alive
from ..errors import EnvUnavailable
from . import domain as domain_mod


def import_libvirt():
    """The libvirt module (its error printer silenced), or EnvUnavailable."""
    try:
        import libvirt
    except ImportError:
        raise EnvUnavailable("libvirt-python is not installed: `pip install libvirt-python` "
                             "(needs libvirt-dev and pkg-config to build)") from None
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)  # no stderr noise
    return libvirt


def default_uri() -> str:
    """qemu:///system as root (the system daemon runs QEMU), qemu:///session
    otherwise (QEMU runs as the user, so it can read the user's files)."""
    return "qemu:///system" if os.geteuid() == 0 else "qemu:///session"


def version_string(n: int) -> str:
    """libvirt's version number (major * 1e6 + minor * 1e3 + micro) as text."""
    return f"{n // 1000000}.{n // 1000 % 1000}.{n % 1000}"


def first_error(message: str, limit: int = 160) -> str:
    """The telling line of a libvirt error that quotes QEMU's stderr (which
    also has deprecation warnings and timestamps)."""
    lines = [re.sub(r"^\S+Z qemu-system-\S+: ", "", ln).strip() for ln in message.splitlines()]
    telling = [ln for ln in lines if re.search(r"error|fail|cannot|denied", ln, re.I)
               and "deprecated" not in ln] or lines
    text = telling[0] if telling else message
    return text if len(text) <= limit else text[:limit - 3] + "..."


def destroy(libvirt, dom) -> None:
    """Destroy domain ``dom`` (and undefine it, if persistent), best effort."""
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


def uninterrupted(fn: Callable[[], None]) -> None:
    """Run ``fn`` to its end, holding a Ctrl-C (SIGINT) that comes meanwhile
    until it returns, then raising it as KeyboardInterrupt.

    A second Ctrl-C during a session's cleanup raised KeyboardInterrupt in
    the main thread wherever it was: landing between looking a domain up
    and destroying it, it left the guest to the next session's reaper.
    Outside the main thread (where no signal lands) ``fn`` just runs."""
    if threading.current_thread() is not threading.main_thread():
        fn()
        return
    caught: list[int] = []
    try:
        previous = signal.signal(signal.SIGINT, lambda signum, _frame: caught.append(signum))
    except (ValueError, OSError):
        fn()
        return
    try:
        fn()
    finally:  # (None: a handler not installed from Python; the default then)
        signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)
    if caught:
        raise KeyboardInterrupt


def destroy_over_new_connection(libvirt, uri: str, name: str) -> None:
    """Destroy domain ``name`` over a new connection to ``uri``, best effort:
    a session's connection broke but libvirtd may still run (its AUTODESTROY
    then removes the guest, but not always at once)."""
    try:
        conn = libvirt.open(uri)
    except libvirt.libvirtError:
        return
    try:
        dom = conn.lookupByName(name)
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


def reap_domains(hostname: str) -> list[tuple[str, str | None]]:
    """Destroy the domains whose owning session is dead; return (domain
    name, its work directory label) of each."""
    removed: list[tuple[str, str | None]] = []
    try:
        libvirt = import_libvirt()
        conn = libvirt.open(default_uri())
    except Exception:  # noqa: BLE001 - nothing to reap without libvirt
        return removed
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
            owner = labels.get(OWNER_LABEL)
            if not owner or owner_alive(owner, hostname):
                continue
            try:
                persistent = dom.isPersistent()
                if dom.isActive():
                    dom.destroy()
                if persistent:
                    dom.undefine()
            except libvirt.libvirtError:
                continue
            removed.append((name, labels.get(domain_mod.WORKDIR_LABEL)))
    finally:
        conn.close()
    return removed


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
