"""Network-stack workload: TCP round trips over the loopback interface.

netperf's TCP_RR, in miniature and without a NIC: a client sends ``size``
bytes to an echo server on 127.0.0.1 and waits for them to come back, ``n``
times, over one connection with Nagle off. Server and client are two
processes (the server is forked), as in netperf, so each round trip is two
sends, two receives and two wake-ups through the kernel's TCP/IP stack.

Nothing leaves the environment: a container of this plugin runs with
``network_mode=none`` (its only interface is its own ``lo``) and a VM has
no NIC. So this measures what the environment's **kernel network stack and
scheduler** cost per round trip (the host's own kernel in a container,
seccomp included; the guest kernel in a VM, under emulation with TCG). It
does not measure a virtual NIC, a bridge, NAT or virtio-net, where a real
deployment's network overhead usually lives (published: netperf TCP_RR
37.6 us native, 67.9 us KVM with virtio-net).

Standard library only.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any

from ._common import finish, positive_int

IFF_UP = 0x1


def loopback_state() -> dict[str, Any]:
    """``lo``'s state from /sys/class/net: ``up`` (its IFF_UP flag), the
    flags and every interface the environment has (a plugin container or VM
    has only ``lo``)."""
    out: dict[str, Any] = {"interfaces": sorted(os.listdir("/sys/class/net")) if os.path.isdir("/sys/class/net")
                           else None}
    try:
        with open("/sys/class/net/lo/flags") as f:
            flags = int(f.read().strip(), 16)
        out.update(flags=hex(flags), up=bool(flags & IFF_UP))
    except (OSError, ValueError) as exc:
        out.update(flags=None, up=None, error=str(exc))
    return out


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("the echo peer closed the connection")
        buf += chunk
    return bytes(buf)


def _serve(listener: socket.socket, size: int) -> None:
    """The forked echo server: one connection, echo until it closes."""
    conn, _ = listener.accept()
    listener.close()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while True:
        data = conn.recv(size)
        if not data:
            break
        conn.sendall(data)
    conn.close()


def tcp_round_trip(n: int = 2000, size: int = 64, host: str = "127.0.0.1") -> dict[str, Any]:
    """``n`` TCP round trips of ``size`` bytes over loopback.

    Records ``n`` "round trips" (rate in round trips/s). Returns
    ``seconds``, ``rate``, ``unit``, ``us_per_round_trip`` and ``loopback``
    (:func:`loopback_state`). Raises RuntimeError, naming the interfaces,
    when ``lo`` is down. With the defaults one call takes 20-60 ms on a host.
    """
    positive_int("n", n)
    positive_int("size", size)
    if host not in ("127.0.0.1", "::1", "localhost"):
        raise ValueError(f"host must be a loopback address (127.0.0.1, ::1), got {host!r}: this workload "
                         "never sends traffic out of the environment")
    lo = loopback_state()
    if lo.get("up") is False:
        raise RuntimeError(f"the loopback interface is down in this environment (flags {lo['flags']}, "
                           f"interfaces {lo['interfaces']}): bring it up (ip link set lo up)")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    try:
        listener.bind((host, 0))
        listener.listen(1)
    except BaseException:
        listener.close()
        raise
    address = listener.getsockname()[:2]
    pid = os.fork()
    if pid == 0:  # the echo server
        code = 0
        try:
            _serve(listener, size)
        except BaseException:  # noqa: BLE001 - a child never returns into the worker
            code = 1
        finally:
            os._exit(code)
    listener.close()
    payload = b"x" * size
    try:
        client = socket.create_connection(address, timeout=30)
    except OSError:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        raise
    try:
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client.sendall(payload)  # one warm-up round trip: the connection and the server are running
        _recv_exact(client, size)
        t0 = time.perf_counter()
        for _ in range(n):
            client.sendall(payload)
            _recv_exact(client, size)
        seconds = time.perf_counter() - t0
    finally:
        client.close()
        os.waitpid(pid, 0)
    out = finish(n, "round trips", seconds, size=size)
    out.update(us_per_round_trip=seconds / n * 1e6, loopback=lo)
    return out
