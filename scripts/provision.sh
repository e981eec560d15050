#!/usr/bin/env bash
# Provision a Debian or Ubuntu machine for pytest-virtoverhead, as root.
# Idempotent: installs what is missing, starts what is not running.
#
#   scripts/provision.sh          install packages, start dockerd and libvirtd
#   scripts/provision.sh --stop   stop the daemons this script started
#
# Network rules: dockerd runs with --bridge=none --iptables=false; libvirt's
# "default" network is left inactive. Containers and VMs get no network.
set -euo pipefail

STATE=/run/pytest-virtoverhead
mkdir -p "$STATE"

log() { echo "provision: $*" >&2; }

stop_pidfile() {
    local name=$1 pidfile=$2
    if [[ -s $pidfile ]]; then
        local pid; pid=$(cat "$pidfile")
        if kill -0 "$pid" 2>/dev/null; then
            log "stopping $name (pid $pid)"
            kill "$pid"
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        fi
        rm -f "$pidfile"
    fi
}

if [[ ${1:-} == --stop ]]; then
    stop_pidfile libvirtd "$STATE/libvirtd.pid"
    stop_pidfile virtlogd "$STATE/virtlogd.pid"
    stop_pidfile dockerd "$STATE/dockerd.pid"
    stop_pidfile containerd "$STATE/containerd.pid"
    exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
    echo "provision: run as root (it installs Debian packages and starts dockerd and libvirtd)" >&2
    exit 1
fi

PACKAGES=(python3 python3-venv python3-dev gcc pkg-config
          docker.io containerd runc crun
          qemu-system-x86 qemu-utils libvirt-daemon-system libvirt-dev
          busybox-static cpio kmod e2fsprogs sysbench linux-image-amd64 chromium
          openssh-client openssh-server)
# openssh-server: tests/test_xdist_ssh.py starts its own sshd on 127.0.0.1
# (xdist's --tx ssh=...); the package's daemon is never started here.
missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    # Daemons must not be started by the package scripts (no systemd here,
    # and we start them ourselves with our own flags).
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
    rm -f /usr/sbin/policy-rc.d
fi

# -- container runtimes ------------------------------------------------------
# Debian's crun package does not register itself with dockerd: add it to
# daemon.json (runtimes only, so no clash with the flags dockerd is started
# with). Runtimes are reloadable: a running dockerd picks them up on SIGHUP,
# without a restart, and its containers keep running.
DAEMON_JSON=/etc/docker/daemon.json
if [[ -x /usr/bin/crun ]]; then
    changed=$(python3 - "$DAEMON_JSON" <<'PY'
import json, os, sys
path = sys.argv[1]
conf = {}
if os.path.exists(path):
    with open(path) as f:
        text = f.read().strip()
    conf = json.loads(text) if text else {}
runtimes = conf.setdefault("runtimes", {})
if "crun" in runtimes:
    print("no")
    sys.exit(0)
runtimes["crun"] = {"path": "/usr/bin/crun"}
os.makedirs(os.path.dirname(path), exist_ok=True)
with open(path + ".tmp", "w") as f:
    json.dump(conf, f, indent=2)
    f.write("\n")
os.replace(path + ".tmp", path)
print("yes")
PY
)
    [[ $changed == yes ]] && log "registered crun in $DAEMON_JSON"
fi

# -- dockerd ---------------------------------------------------------------
if ! docker info >/dev/null 2>&1; then
    log "starting dockerd (--bridge=none --iptables=false)"
    nohup dockerd --bridge=none --iptables=false --ip6tables=false \
        --pidfile "$STATE/dockerd.pid.docker" >"$STATE/dockerd.log" 2>&1 &
    echo $! > "$STATE/dockerd.pid"
    for _ in $(seq 100); do docker info >/dev/null 2>&1 && break; sleep 0.2; done
    docker info >/dev/null 2>&1 || { log "dockerd did not come up; see $STATE/dockerd.log"; tail -20 "$STATE/dockerd.log" >&2; exit 1; }
fi
if [[ -x /usr/bin/crun ]] && ! docker info -f '{{json .Runtimes}}' 2>/dev/null | grep -q '"crun"'; then
    dpid=$(cat "$STATE/dockerd.pid.docker" /var/run/docker.pid 2>/dev/null | head -1 || true)
    if [[ -n $dpid ]] && kill -0 "$dpid" 2>/dev/null; then
        log "reloading dockerd (pid $dpid) so that it sees the crun runtime"
        kill -HUP "$dpid"
        for _ in $(seq 25); do docker info -f '{{json .Runtimes}}' | grep -q '"crun"' && break; sleep 0.2; done
    fi
    docker info -f '{{json .Runtimes}}' | grep -q '"crun"' || log "dockerd does not list crun; see $DAEMON_JSON"
fi

# -- libvirtd ----------------------------------------------------------------
# As root, libvirt runs QEMU as libvirt-qemu, which cannot read /root (where a
# virtualenv often lives) through the guest's 9p share: run QEMU as root.
QEMU_CONF=/etc/libvirt/qemu.conf
conf_changed=0
if ! grep -q '^user = "+0"' "$QEMU_CONF"; then
    printf '\n# pytest-virtoverhead: let QEMU read the host files it shares with guests\nuser = "+0"\ngroup = "+0"\n' >> "$QEMU_CONF"
    conf_changed=1
fi
libvirt_up() { virsh -c qemu:///system version >/dev/null 2>&1; }
if ((conf_changed)) && libvirt_up && [[ -s $STATE/libvirtd.pid ]]; then
    stop_pidfile libvirtd "$STATE/libvirtd.pid"
fi
if ! libvirt_up; then
    if ! pgrep -x virtlogd >/dev/null; then
        virtlogd -d -p "$STATE/virtlogd.pid"
    fi
    log "starting libvirtd"
    libvirtd -d -p "$STATE/libvirtd.pid"
    for _ in $(seq 100); do libvirt_up && break; sleep 0.2; done
    libvirt_up || { log "libvirtd did not come up"; exit 1; }
fi
# Leave the default network inactive (and do not let it autostart).
if virsh -c qemu:///system net-info default >/dev/null 2>&1; then
    virsh -c qemu:///system net-autostart default --disable >/dev/null 2>&1 || true
    if virsh -c qemu:///system net-info default 2>/dev/null | grep -q '^Active:.*yes'; then
        virsh -c qemu:///system net-destroy default >/dev/null
    fi
fi
log "ready: docker $(docker version -f '{{.Server.Version}}' 2>/dev/null), $(virsh -c qemu:///system version 2>/dev/null | grep -m1 'Running hypervisor' || echo libvirt)"
