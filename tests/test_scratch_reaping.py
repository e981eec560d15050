"""Scratch directories of killed sessions are removed: the baremetal
scratch directory carries its owner's pid, and the next session's reaper
removes those of owners that no longer run."""

import os
import signal
import subprocess
import sys
import time

from pytest_virtoverhead.envs.baremetal import reap_scratch

SLOW = """
import time, pytest

@pytest.mark.virt(rounds=50)
def test_slow():
    time.sleep(0.2)
"""


def test_reap_scratch_removes_only_dead_owners(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    for name in (f"virt-scratch-{dead.pid}-baremetal-abc", f"virt-scratch-{os.getpid()}-control-def",
                 f"virt-scratch-{os.getppid()}-x-ghi", "virt-scratch-notapid-x-1", "unrelated"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "file").write_text("x")
    removed = reap_scratch(str(tmp_path), own_pid=os.getpid())
    assert removed == [f"scratch directory {tmp_path}/virt-scratch-{dead.pid}-baremetal-abc"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([
        f"virt-scratch-{os.getpid()}-control-def", f"virt-scratch-{os.getppid()}-x-ghi",
        "virt-scratch-notapid-x-1", "unrelated"])


def test_sigkilled_session_scratch_is_removed_by_the_next_session(pytester):
    pytester.makepyfile(test_slow=SLOW)
    tmp = pytester.path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp)}
    # --virt-cpus=0: not the CPU other measuring sessions take by default,
    # so this one starts at once instead of waiting for the host lock.
    args = [sys.executable, "-m", "pytest", "--virt-compare", "--virt-envs=baremetal,control=baremetal",
            "--virt-cpus=0", "-p", "no:cacheprovider"]
    proc = subprocess.Popen(args, cwd=pytester.path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len([p for p in tmp.iterdir() if p.name.startswith("virt-")]) < 2:
            time.sleep(0.1)
        time.sleep(1.0)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    left = sorted(p.name for p in tmp.iterdir() if p.name.startswith("virt-") and p.is_dir())
    assert left == [f"virt-scratch-{proc.pid}-baremetal-{left[0].rsplit('-', 1)[1]}",
                    f"virt-scratch-{proc.pid}-control-{left[1].rsplit('-', 1)[1]}"], left
    time.sleep(0.5)  # the killed session's idle workers read EOF and leave
    pytester.makepyfile(test_slow=SLOW.replace("rounds=50", "rounds=2").replace("0.2", "0.01"))
    result = subprocess.run(args, cwd=pytester.path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "removed leftovers of earlier sessions: scratch directory" in result.stdout, result.stdout
    assert not any(p.name.startswith(f"virt-scratch-{proc.pid}-") for p in tmp.iterdir())
    # and the finished session removed its own
    assert not [p for p in tmp.iterdir() if p.name.startswith("virt-scratch-")]
