"""Two measuring sessions on one host never share a CPU
in silence. A session holds a flock per CPU it measures on
(pytest_virtoverhead.session.hostlock); the next one takes another free CPU under
--virt-cpus=auto, or waits (--virt-cpu-wait), or refuses naming the holder."""

import fnmatch
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from pytest_virtoverhead.session import hostlock

HOLD = textwrap.dedent("""
    import json, os, sys, time
    from pytest_virtoverhead.session import hostlock
    locks = hostlock.CpuLocks(sys.argv[1])
    assert not locks.try_lock([int(c) for c in sys.argv[2].split(",")], hostlock.session_info("holder", "/holder/dir"))
    print("locked", flush=True)
    time.sleep(float(sys.argv[3]))
""")


def hold(tmp_path, cpus, seconds):
    """A process that holds the locks of ``cpus`` for ``seconds``."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path), cpus, str(seconds)], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


@pytest.fixture
def lockdir(tmp_path, monkeypatch):
    path = tmp_path / "locks"
    monkeypatch.setenv(hostlock.LOCK_DIR_ENV, str(path))
    return path


def test_candidates():
    assert hostlock.candidates((3,), True, [0, 1, 2, 3]) == [(3,), (2,), (1,)]  # CPU 0 left to the host
    assert hostlock.candidates((1,), True, [0, 1]) == [(1,)]
    assert hostlock.candidates((0,), True, [0]) == [(0,)]
    assert hostlock.candidates((0, 1), False, [0, 1, 2, 3]) == [(0, 1)]
    assert hostlock.candidates(None, False, [0, 1]) == [(0, 1)]


def test_auto_takes_another_free_cpu(lockdir):
    holder = hold(lockdir, "3", 60)
    try:
        said = []
        locks = hostlock.CpuLocks()
        cpus = hostlock.acquire(locks, (3,), auto=True, available=[0, 1, 2, 3], wait=0,
                                info=hostlock.session_info("me"), say=said.append)
        assert cpus == (2,) and locks.cpus == (2,)
        assert len(said) == 1 and fnmatch.fnmatch(
            said[0], f"virtoverhead: CPU 3 is in use by the pytest-virtoverhead session of pid {holder.pid} "
                     "(started ??:??:??, in /holder/dir): this session measures on CPU 2 instead (--virt-cpus=auto)")
        locks.release()
    finally:
        holder.kill()
        holder.wait()


def test_explicit_cpus_wait_then_refuse_naming_the_holder(lockdir):
    holder = hold(lockdir, "0,1", 60)
    try:
        said = []
        t0 = time.monotonic()
        with pytest.raises(hostlock.CpuBusy) as info:
            hostlock.acquire(hostlock.CpuLocks(), (1,), auto=False, available=[0, 1], wait=1.0,
                             info=hostlock.session_info("me"), say=said.append)
        assert 0.9 <= time.monotonic() - t0 < 5
        assert said[0].startswith("virtoverhead: waiting for CPU 1, in use by the pytest-virtoverhead session "
                                  f"of pid {holder.pid}")
        assert f"--virt-cpus: CPU 1 is in use by the pytest-virtoverhead session of pid {holder.pid}" in str(info.value)
        assert "waited 1 s (--virt-cpu-wait)" in str(info.value)
        # --virt-cpus=all needs every CPU
        with pytest.raises(hostlock.CpuBusy, match="every CPU"):
            hostlock.acquire(hostlock.CpuLocks(), None, auto=False, available=[0, 1], wait=0, info={})
    finally:
        holder.kill()
        holder.wait()


def test_a_killed_holder_frees_its_cpu_at_once(lockdir):
    holder = hold(lockdir, "1", 60)
    locks = hostlock.CpuLocks()
    assert locks.try_lock([1], {}) != {}
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert locks.try_lock([1], {}) == {} and locks.cpus == (1,)
    locks.release()
    assert locks.cpus == ()


def test_wait_ends_when_the_holder_finishes(lockdir):
    holder = hold(lockdir, "1", 1.5)
    said = []
    cpus = hostlock.acquire(hostlock.CpuLocks(), (1,), auto=False, available=[0, 1], wait=30,
                            info={}, say=said.append)
    holder.wait()
    assert cpus == (1,) and said[-1] == "virtoverhead: the CPU is free: measuring"


SLOW = """
import time, pytest

@pytest.mark.virt(rounds=2)
def test_slow():
    time.sleep(0.3)
"""


def _auto_cpu():
    avail = sorted(os.sched_getaffinity(0))
    return avail[-1]


def test_second_session_on_the_same_cpu_is_refused_or_waits(pytester, lockdir):
    """Two real sessions from two directories at once (before: both measured
    on CPU 1, medians doubled, no warning)."""
    pytester.makepyfile(test_slow=SLOW)
    args = ["--virt-compare", "--virt-envs=baremetal,control=baremetal", "-p", "no:cacheprovider",
            f"--virt-cpus={_auto_cpu()}"]
    first = subprocess.Popen([sys.executable, "-m", "pytest", *args, "--virt-rounds=6"], cwd=pytester.path,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        lock = lockdir / f"cpu{_auto_cpu()}.lock"
        while not (lock.exists() and lock.stat().st_size) and time.monotonic() < deadline:
            time.sleep(0.1)
        refused = pytester.runpytest_subprocess(*args, "--virt-cpu-wait=0")
        assert refused.ret == pytest.ExitCode.USAGE_ERROR
        refused.stderr.fnmatch_lines([f"ERROR: --virt-cpus: CPU {_auto_cpu()} is in use by the pytest-virtoverhead "
                                      f"session of pid {first.pid} (started *, in {pytester.path}): two sessions "
                                      "measuring on one CPU would each time the other's work.*"])
        waited = pytester.runpytest_subprocess(*args, "--virt-cpu-wait=120")
        assert waited.ret == 0, waited.stdout.str()
        waited.stdout.fnmatch_lines([f"virtoverhead: waiting for CPU {_auto_cpu()}, in use by the pytest-virtoverhead "
                                     f"session of pid {first.pid}*", "virtoverhead: the CPU is free: measuring"])
        assert first.wait(timeout=120) == 0
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()


def test_bad_cpu_wait_is_a_usage_error(pytester):
    pytester.makepyfile("def test_a(): pass")
    result = pytester.runpytest_subprocess("--virt-compare", "--virt-cpu-wait=-1")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--virt-cpu-wait: must be 0 (refuse at once) or more seconds, got '-1'*"])


FIXTURE_SESSION = """
import fcntl, os
import pytest

LOCK = os.path.join(os.environ["VIRTOVERHEAD_LOCK_DIR"], "cpu{cpu}.lock")


def held():
    fd = os.open(LOCK, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


@pytest.fixture(scope="session")
def app(baremetal):
    return baremetal


def test_1_uses_env(baremetal):
    assert baremetal.run(os.getpid) != os.getpid()
    assert held()


def test_2_no_env():
    assert not held()


def test_3_uses_env_through_a_fixture(app):
    assert held()


def test_4_no_env_again():
    assert not held()
"""


def test_fixture_session_holds_the_cpu_only_during_tests_that_use_an_environment(pytester, lockdir):
    """Before: the first fixture use locked the CPU until the session ended,
    so a pytester session later in the same suite waited --virt-cpu-wait."""
    pytester.makepyfile(test_fix=FIXTURE_SESSION.replace("{cpu}", str(_auto_cpu())))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", f"--virt-cpus={_auto_cpu()}",
                                           "--virt-cpu-wait=0", "-v")
    result.assert_outcomes(passed=4)
