"""pytest-xdist workers on another host through xdist's own transport
(issue 23): ``-d --tx ssh=HOST//python=...`` against an sshd this module
starts on a loopback port, with its own host key, client key,
authorized_keys, sshd_config and ssh_config (strict host key checking
against the generated host key), nothing but 127.0.0.1.

The "other host" is this machine: the ssh side runs a wrapper given as
``python=``, which sets ``VIRTOVERHEAD_MACHINE`` to another name (so the
identity that travels is seen) and the CPU lock directory of the test
(the host's lock, the same host) before it runs the repository's
interpreter. The controller runs under a name of its own.
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from virthelp import aa_args, read_json

from pytest_virtoverhead.offline.runmerge import merge_runs
from pytest_virtoverhead.session import hostlock
from pytest_virtoverhead.session.xdistfamily import Family
from pytest_virtoverhead.session.xdisthosts import is_local, place, remote_specs

pytest.importorskip("xdist")

SSHD = "/usr/sbin/sshd"
REMOTE = "loopback-ssh-host"
CONTROLLER = "controller-host"
ALIAS = "virtoverhead-loopback"

AA = aa_args(rounds=4, seed=11)

SUITE = """
import time
import pytest

@pytest.mark.virt(claims=["control ~= baremetal +- 60%"])
@pytest.mark.parametrize("i", range(4))
def test_aa(i):
    time.sleep(0.004)
"""


@pytest.fixture(autouse=True)
def _own_lock_dir(tmp_path, monkeypatch):
    monkeypatch.setenv(hostlock.LOCK_DIR_ENV, str(tmp_path / "locks"))
    monkeypatch.setenv("VIRTOVERHEAD_MACHINE", CONTROLLER)


# -- units --------------------------------------------------------------------

def test_which_specs_are_on_other_hosts():
    assert is_local("popen") and is_local("2*popen//python=python3") and is_local("popen//chdir=/x")
    assert not is_local("ssh=h//python=python3") and not is_local("socket=127.0.0.1:8888")
    assert not is_local("popen//via=proxy")  # started on the proxy's host
    assert remote_specs(["2*popen", "3*ssh=h", "socket=x:1"]) == ["3*ssh=h", "socket=x:1"]


def _doc(*tests: str) -> dict:
    return {"machine": {"name": CONTROLLER}, "host": {"virtual": False},
            "environments": {"baremetal": {"kind": "baremetal", "xdist_cpus": {"gw0": [1]}}},
            "tests": [{"test": t} for t in tests], "results": [{"test": t, "env": "baremetal"} for t in tests],
            "claims": [{"test": t, "claim": "c"} for t in tests]}


def _host(name: str, wid: str) -> dict:
    return {"machine": {"name": name}, "host": {"virtual": False, "label": name},
            "environments": {"baremetal": {"kind": "baremetal", "host": name}}}


def test_place_leaves_a_run_of_the_controllers_machine_as_it_is():
    doc = _doc("a", "b")
    data, notes = place(json.loads(json.dumps(doc)), {"gw0": {"tests": ["a", "b"]}}, {"gw0": _host(CONTROLLER, "gw0")})
    assert data == doc and notes == []


def test_place_puts_each_test_on_its_machine():
    data, notes = place(_doc("a", "b"), {"gw0": {"tests": ["a"]}, "gw1": {"tests": ["b"]}},
                        {"gw0": _host(CONTROLLER, "gw0"), "gw1": _host(REMOTE, "gw1")})
    for key in ("tests", "results", "claims"):
        assert {e["test"]: e["machine"] for e in data[key]} == {"a": CONTROLLER, "b": REMOTE}
    assert list(data["machines"]) == [CONTROLLER, REMOTE]
    assert data["machines"][REMOTE]["xdist_workers"] == ["gw1"]
    assert data["environments"]["baremetal"]["machines"] == [CONTROLLER, REMOTE]
    assert data["environments"]["baremetal"]["xdist_cpus"] == {"gw0": [1]}
    assert data["machine"]["name"] == CONTROLLER and data["machine"]["measured"] is True
    assert REMOTE in notes[0] and "gw1" in notes[0]
    # Only a remote machine measured: it is the run's machine.
    data, _ = place(_doc("a"), {"gw0": {"tests": ["a"]}}, {"gw0": _host(REMOTE, "gw0")})
    assert data["machine"] == {"name": REMOTE} and data["xdist"]["controller_machine"] == CONTROLLER


# -- the loopback sshd --------------------------------------------------------

def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _unavailable() -> str | None:
    """Why the loopback sshd cannot run here (None: it can; as root, its
    privilege separation directory is made if missing)."""
    if not os.path.exists(SSHD):
        return (f"no OpenSSH server ({SSHD}): apt-get install -y --no-install-recommends openssh-server "
                "(scripts/provision.sh installs it)")
    for tool in ("ssh", "ssh-keygen"):
        if shutil.which(tool) is None:
            return f"no {tool}: apt-get install -y --no-install-recommends openssh-client"
    if os.geteuid() == 0 and not os.path.isdir("/run/sshd"):
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation directory
    return None


@pytest.fixture(scope="module")
def loopback_ssh(tmp_path_factory):
    """An sshd on 127.0.0.1 and a free port, serving this user with a key
    of its own; yields the ssh_config path (Host ALIAS). Ended by pid."""
    reason = _unavailable()
    if reason:
        pytest.skip(reason)
    d = tmp_path_factory.mktemp("sshd")
    for key in ("host_key", "client_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", key, "-f", str(d / key)], check=True)
    (d / "authorized_keys").write_text((d / "client_key.pub").read_text())
    host_type, host_key = (d / "host_key.pub").read_text().split()[:2]
    (d / "known_hosts").write_text(f"{ALIAS} {host_type} {host_key}\n")
    port = _free_port()
    user = getpass.getuser()
    (d / "sshd_config").write_text(
        f"ListenAddress 127.0.0.1\nPort {port}\nHostKey {d / 'host_key'}\nPidFile {d / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {d / 'authorized_keys'}\nPermitRootLogin prohibit-password\n"
        "PubkeyAuthentication yes\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        f"StrictModes no\nUsePAM no\nAllowUsers {user}\nX11Forwarding no\nAllowTcpForwarding no\n"
        "PrintMotd no\nSubsystem sftp internal-sftp\n")
    config = d / "ssh_config"
    config.write_text(
        f"Host {ALIAS}\n  HostName 127.0.0.1\n  Port {port}\n  User {user}\n  IdentityFile {d / 'client_key'}\n"
        f"  IdentitiesOnly yes\n  UserKnownHostsFile {d / 'known_hosts'}\n  GlobalKnownHostsFile /dev/null\n"
        f"  HostKeyAlias {ALIAS}\n  StrictHostKeyChecking yes\n  BatchMode yes\n  ConnectTimeout 10\n"
        "  ForwardAgent no\n  ClearAllForwardings yes\n")
    log = open(d / "sshd.log", "w")
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(d / "sshd_config")], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 15
        while True:
            if proc.poll() is not None:
                why = f"sshd ended at once (status {proc.returncode}): {(d / 'sshd.log').read_text()}"
                if os.geteuid() != 0:
                    pytest.skip(f"{why} (not root: sshd may need root, or keys this user may use)")
                pytest.fail(why)
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"sshd does not listen on 127.0.0.1:{port}: {(d / 'sshd.log').read_text()}")
                time.sleep(0.1)
        check = subprocess.run(["ssh", "-F", str(config), ALIAS, "true"], capture_output=True, text=True, timeout=30)
        why = f"ssh into the loopback sshd: {check.stderr}\n{(d / 'sshd.log').read_text()}"
        if check.returncode != 0 and os.geteuid() != 0:
            pytest.skip(f"{why} (not root: sshd as an ordinary user serves only that user's keys)")
        assert check.returncode == 0, why
        yield config
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _ssh_tx(config: Path, tmp_path: Path) -> tuple[str, Path]:
    """The ``--tx`` spec of one worker on the "other host": its python
    is a wrapper that names that host and the test's CPU lock directory."""
    wrapper = tmp_path / "remote-python"
    wrapper.write_text(f"#!/bin/sh\nVIRTOVERHEAD_MACHINE={REMOTE}; export VIRTOVERHEAD_MACHINE\n"
                       f"{hostlock.LOCK_DIR_ENV}={os.environ[hostlock.LOCK_DIR_ENV]}; export {hostlock.LOCK_DIR_ENV}\n"
                       f'exec {sys.executable} "$@"\n')
    wrapper.chmod(0o755)
    # The worker's directory on that host: xdist copies pytest there; the tests are the same files.
    remote = tmp_path / "remote"
    remote.mkdir()
    return f"ssh={ALIAS}//python={wrapper}//chdir={remote}//ssh_config={config}", remote


def _judged(data: dict) -> list[str]:
    return [c["test"] for c in data["claims"] if c["verdict"] in ("pass", "fail", "inconclusive")]


def test_an_ssh_worker_measures_on_its_host_under_its_name(pytester, loopback_ssh, tmp_path):
    pytester.makepyfile(test_suite=SUITE)
    tx, remote = _ssh_tx(loopback_ssh, tmp_path)
    shutil.copy(pytester.path / "test_suite.py", remote / "test_suite.py")
    # --virt-cpus names the controller's CPUs: the worker on the other host chooses its own.
    result = pytester.runpytest_subprocess(*AA, "-d", "--tx", tx, "--virt-cpus=0", "--virt-json=out.json",
                                           timeout=300)
    out = result.stdout.str()
    assert result.ret == 0, out + result.stderr.str()
    assert "1 worker(s) on other hosts choose their own CPU there" in out
    assert f"measured on {REMOTE} (4 test(s), xdist worker(s) gw0)" in out
    data = read_json(pytester, "out.json")
    assert len(set(_judged(data))) == 4
    assert data["machine"]["name"] == REMOTE and data["machine"]["name_source"] == "VIRTOVERHEAD_MACHINE"
    assert data["xdist"]["controller_machine"] == CONTROLLER
    assert list(data["machines"]) == [REMOTE]
    for key in ("tests", "results", "claims"):
        assert {e["machine"] for e in data[key]} == {REMOTE}
    worker = data["xdist"]["workers"]["gw0"]
    assert worker["machine"] == REMOTE and worker["cpus_chosen_by"] == "the worker, on its host"
    # Its own choice on its host (auto: the host's last CPU), held under the host's lock.
    assert worker["cpus"] == [sorted(os.sched_getaffinity(0))[-1]]
    assert data["environments"]["baremetal"]["xdist_cpus"] == {"gw0": worker["cpus"]}
    assert (Path(os.environ[hostlock.LOCK_DIR_ENV]) / f"cpu{worker['cpus'][0]}.lock").exists()


def _local_and_ssh(pytester, loopback_ssh, tmp_path, *args):
    """The suite under one local worker (on the first CPU) and one ssh
    worker (which picks its own), with ``args``."""
    pytester.makepyfile(test_suite=SUITE)
    tx, remote = _ssh_tx(loopback_ssh, tmp_path)
    shutil.copy(pytester.path / "test_suite.py", remote / "test_suite.py")
    cpus = sorted(os.sched_getaffinity(0))
    return pytester.runpytest_subprocess(*AA, "-d", "--tx", "popen", "--tx", tx, f"--virt-cpus={cpus[0]}", *args,
                                         timeout=300)


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs: one for each worker")
def test_a_local_and_an_ssh_worker_keep_their_tests_apart(pytester, loopback_ssh, tmp_path):
    cpus = sorted(os.sched_getaffinity(0))
    result = _local_and_ssh(pytester, loopback_ssh, tmp_path, "--virt-json=out.json", "--virt-markdown=out.md")
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    data = read_json(pytester, "out.json")
    assert len(set(_judged(data))) == 4
    workers = data["xdist"]["workers"]
    assert workers["gw0"]["machine"] == CONTROLLER and workers["gw0"]["cpus"] == [cpus[0]]
    assert workers["gw1"]["machine"] == REMOTE and workers["gw1"]["cpus"] == [cpus[-1]]
    assert set(data["machines"]) == {CONTROLLER, REMOTE}
    assert "Measured on 2 machines" in (pytester.path / "out.md").read_text()
    assert data["machine"]["name"] == CONTROLLER and data["machine"]["measured"] is True
    for key in ("tests", "results", "claims"):
        for entry in data[key]:
            worker = "gw0" if entry["test"] in workers["gw0"]["tests"] else "gw1"
            assert entry["machine"] == workers[worker]["machine"], entry["test"]
    # merge keeps the machines apart; compare reads the run.
    merged = merge_runs([("out.json", data)])
    assert set(merged["machines"]) == {CONTROLLER, REMOTE}
    assert {t["machine"] for t in merged["tests"]} == {CONTROLLER, REMOTE}
    compare = subprocess.run([sys.executable, "-m", "pytest_virtoverhead.offline.cli", "compare", "out.json", "out.json"],
                             cwd=pytester.path, capture_output=True, text=True, timeout=120)
    assert compare.returncode == 0, compare.stdout + compare.stderr


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs: one for each worker")
def test_holm_is_one_family_over_a_local_and_an_ssh_worker(pytester, loopback_ssh, tmp_path):
    """The workers meet through channels the controller opens on their
    gateways, so a worker on another host counts in the family too."""
    result = _local_and_ssh(pytester, loopback_ssh, tmp_path, "--virt-correction=holm", "--virt-json=out.json")
    result.assert_outcomes(passed=4)
    data = read_json(pytester, "out.json")
    assert data["verdict_method"]["family_size"] == 4
    assert {w["machine"] for w in data["xdist"]["workers"].values()} == {CONTROLLER, REMOTE}
    assert all(len(w["tests"]) for w in data["xdist"]["workers"].values())
    # Each worker corrected its own claims within the whole family.
    assert [w["family_size"] for w in data["xdist"]["workers"].values()] == [4, 4]


class _Channel:
    def __init__(self):
        self.sent = []
        self.callback = None

    def setcallback(self, callback):
        self.callback = callback

    def send(self, item):
        self.sent.append(item)


class _Gateway:
    def newchannel(self):
        return _Channel()


def test_the_family_answers_when_every_running_worker_has_sent():
    family = Family()
    a, b, c = (family.channel_for(w, _Gateway()) for w in ("gw0", "gw1", "gw2"))
    a.callback([0.1, 0.9])
    family.leave("gw2")  # gone down without sending: not waited for
    assert a.sent == []
    b.callback([0.2, 0.8])
    assert a.sent == [[0.2, 0.8]] and b.sent == [[0.1, 0.9]] and c.sent == []
    family.leave("gw0")
    family.leave("gw1")
    assert len(a.sent) == len(b.sent) == 1
