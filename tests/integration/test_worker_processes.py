"""Against the real Docker daemon (and the host): the worker processes a
worker starts and whatever they start end with them, double-forked daemons
included; an out-of-memory kill while worker processes start is named with
the limit; a container has a PIDs limit."""

from __future__ import annotations

import os
import re
import time
import uuid

import pytest
from envrequire import aa_args, unavailable

OOM_AT_START = """
import pytest

HOLD = bytearray(150 << 20)  # each worker process that collects this holds 150 MiB
for i in range(0, len(HOLD), 4096):
    HOLD[i] = 1

@pytest.mark.virt(claims=["container <= 100 * baremetal"])
def test_a():
    pass
"""

#: The generated test files' daemon: a grandchild in a session of its own
#: (double fork), running ``sleep`` with MARK on its command line. Part of
#: their text, so it has no braces for ``str.format``.
_DOUBLE_FORK_DAEMON = """
def double_fork_daemon():
    pid = os.fork()
    if pid == 0:
        os.setsid()
        if os.fork() == 0:
            os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(900)", MARK])
        os._exit(0)
    os.waitpid(pid, 0)
"""


def test_oom_while_worker_processes_start_names_the_oom_and_the_limit(pytester, docker_client):
    pytester.makepyfile(test_oomstart=OOM_AT_START)
    result = pytester.runpytest_subprocess(
        "--virt-compare", "--virt-envs=baremetal,container", "--virt-memory=256m", "--virt-processes=2",
        "--virt-rounds=2", "-p", "no:cacheprovider", "-rA")
    out = result.stdout.str()
    assert "OOM-killed: the environment hit its memory limit (256 MiB, --virt-memory) and the kernel's OOM " \
           "killer ended worker process" in out, out
    assert re.search(r"worker process \d \(pid \d+\) (while|before)", out), out
    assert "no worker process 1 here" not in out
    assert "INTERNALERROR" not in out


DAEMONS = """
import os
import sys

import pytest

MARK = "{mark}"

""" + _DOUBLE_FORK_DAEMON + """

def count_daemons():
    n = 0
    for name in os.listdir("/proc"):
        try:
            with open(f"/proc/{{name}}/cmdline", "rb") as f:
                if MARK.encode() in f.read().split(b"\\0"):
                    n += 1
        except OSError:
            pass
    return n


@pytest.mark.virt(envs={envs}, rounds=3)
def test_a_forks_a_daemon_per_call():
    double_fork_daemon()


@pytest.mark.virt(envs={envs}, rounds=1)
def test_b_counts_them():
    # One daemon per worker process may stay from a test's first run there
    # (a module fixture's server would); the later calls' ones are ended.
    assert count_daemons() <= 8, f"{{count_daemons()}} daemons left running"
"""


def _host_daemons(mark: str) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                if mark.encode() in f.read().split(b"\0"):
                    found.append(int(name))
        except OSError:
            pass
    return found


def _assert_daemons_end(mark, message):
    """The marked daemons are gone within 10 s (they end with their worker)."""
    deadline = time.monotonic() + 10
    while _host_daemons(mark) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _host_daemons(mark), message


def _kill_daemons(mark):
    for pid in _host_daemons(mark):
        os.kill(pid, 9)


@pytest.mark.parametrize("envs", ["baremetal,control=baremetal", "baremetal,container", "baremetal,vm"])
def test_double_forked_daemons_end_with_their_worker_processes(pytester, pytestconfig, request, envs):
    if "container" in envs:
        request.getfixturevalue("docker_client")  # skips (or fails, when required) without a daemon
    mark = f"virt-issue25-daemon-{uuid.uuid4().hex[:8]}"
    names = [e.split("=")[0] for e in envs.split(",")]
    pytester.makepyfile(test_daemons=DAEMONS.format(mark=mark, envs=names))
    try:
        result = pytester.runpytest_subprocess(
            "--virt-compare", f"--virt-envs={envs}", "--virt-processes=2", "--virt-calls=3", "--virt-warmup=1",
            "-p", "no:cacheprovider", "-rA")
        out = result.stdout.str()
        assert "INTERNALERROR" not in out
        if "vm" in names and "no environment to compare with: vm" in out:
            unavailable(pytestconfig, "vm", out.split("no environment to compare with: vm: ")[1])
        result.assert_outcomes(passed=2)
        _assert_daemons_end(mark, "daemons outlived the session")
    finally:
        _kill_daemons(mark)


HANGS = """
import os
import sys
import time

import pytest

MARK = "{mark}"

""" + _DOUBLE_FORK_DAEMON + """

@pytest.mark.virt(envs=["baremetal"], rounds=1)
def test_daemon_then_hang():
    double_fork_daemon()
    time.sleep(120)
"""


def test_a_killed_worker_takes_its_daemons_with_it(pytester):
    """--virt-timeout kills the environment's worker (it cannot end its
    tree itself): the host kills the whole tree, daemons included."""
    mark = f"virt-issue25-hang-{uuid.uuid4().hex[:8]}"
    pytester.makepyfile(test_hang=HANGS.format(mark=mark))
    try:
        result = pytester.runpytest_subprocess(
            *aa_args("--virt-timeout=4", "--virt-warmup=0", "--virt-calls=1"))
        result.stdout.fnmatch_lines(["*did not finish within 4 s (--virt-timeout)*"])
        _assert_daemons_end(mark, "the daemon outlived its killed worker")
    finally:
        _kill_daemons(mark)


PIDS = """
def read_pids_max():
    for path in ("/sys/fs/cgroup/pids.max", "/sys/fs/cgroup/pids/pids.max"):
        try:
            with open(path) as f:
                return f.read().strip()
        except OSError:
            pass
    return None


def test_limit(container):
    assert container.run(read_pids_max) == "4096"
    assert container.metadata["pids_limit"] == 4096
"""


def test_containers_have_a_pids_limit(pytester, docker_client):
    """A fork bomb in a test stays inside its container (its pids cgroup)."""
    pytester.makepyfile(test_pids=PIDS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--virt-envs=baremetal,container")
    result.assert_outcomes(passed=1)
