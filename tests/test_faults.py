"""Faults provoked for real with baremetal workers, and bad input (container
and VM faults live in tests/integration/test_fault_matrix.py; the whole
matrix is in docs/faults.md)."""

import os
import signal
import subprocess
import sys
import time

import pytest
from virthelp import aa_args, read_json

FAULTS = """
import os, signal, time, pytest

@pytest.mark.virt
def test_dies():
    if os.environ["VIRTOVERHEAD_ENV"] == "control":
        os._exit(3)

@pytest.mark.virt
def test_killed():
    if os.environ["VIRTOVERHEAD_ENV"] == "control":
        os.kill(os.getpid(), signal.SIGKILL)

@pytest.mark.virt
def test_hangs():
    if os.environ["VIRTOVERHEAD_ENV"] == "control":
        time.sleep(60)

@pytest.mark.virt(claims=["control <= 100 * baremetal"])
def test_after():
    time.sleep(0.01)
"""


def test_dead_and_hung_workers_fail_their_test_and_are_replaced(pytester):
    pytester.makepyfile(test_faults=FAULTS)
    result = pytester.runpytest_subprocess(
        *aa_args("--virt-timeout=3", "--virt-json=o.json", rounds=2))
    result.assert_outcomes(failed=3, passed=1)
    result.stdout.fnmatch_lines([
        "*the worker process 1 in environment 'control' died while running the test*exit status 3*",
    ])
    result.stdout.fnmatch_lines(["*worker process 1 in environment 'control' died*(killed by SIGKILL)*"])
    result.stdout.fnmatch_lines(["*'item' in environment 'control' did not finish within 3 s*"])
    data = read_json(pytester, "o.json")
    # The test after the faults ran in fresh workers, and the results of
    # every test are in the file.
    assert [c["verdict"] for c in data["claims"]] == ["pass"]
    assert {t["test"].split("::")[1]: t["outcome"] for t in data["tests"]} == {
        "test_dies": "failed", "test_killed": "failed", "test_hangs": "failed", "test_after": "measured"}
    assert data["environments"]["control"]["kind"] == "baremetal"


FUNCS = """
import pytest
from pytest_virtoverhead.envs import RemoteError, SerializationError


def inner(x):
    raise ValueError(f"bad value {x}")


def outer(x):
    return inner(x) + 1


def not_json():
    return {1, 2, 3}


def ok():
    return 1


def test_remote_traceback_names_user_file_and_line(baremetal):
    with pytest.raises(RemoteError) as info:
        baremetal.benchmark(outer, 5)
    tb = info.value.remote_traceback
    assert "test_funcs.py\\", line 10, in outer" in tb
    assert "test_funcs.py\\", line 6, in inner" in tb
    assert "ValueError: bad value 5" in tb


def test_result_that_cannot_cross(baremetal):
    with pytest.raises(RemoteError, match="cannot be sent back to the host as JSON"):
        baremetal.run(not_json)
    # The worker is still serving.
    assert baremetal.run(ok) == 1


def test_bad_keyword_argument(baremetal):
    with pytest.raises(SerializationError, match="argument 'x' of outer cannot cross"):
        baremetal.run(outer, x=b"bytes")
"""


def test_function_faults(pytester):
    pytester.makepyfile(test_funcs=FUNCS)
    result = pytester.runpytest_subprocess("--virt-envs=baremetal", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)


# --------------------------------------------------------------------------
# Ctrl-C and SIGTERM with baremetal workers: a busy worker is killed, not
# waited for; results measured so far are written.


INTERRUPTED = """
import os, time, pytest

@pytest.mark.virt(rounds=1)
def test_a():
    time.sleep(0.01)

@pytest.mark.virt(rounds=1)
def test_slow():
    if os.environ["VIRTOVERHEAD_ENV"] == "control":
        time.sleep(600)
"""


def _signal_midway(path, signals, gap=0.1):
    """Run a compare session; once the control worker is busy with
    test_slow, send ``signals``. Returns (output, status, seconds to exit)."""
    cmd = [sys.executable, "-m", "pytest", "-vv", "-p", "no:cacheprovider", "--virt-compare",
           "--virt-envs=baremetal,control=baremetal", "--virt-warmup=0", "--virt-json=o.json", "test_int.py"]
    proc = subprocess.Popen(cmd, cwd=str(path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "test_slow [control] round 1" in line:
            time.sleep(1.0)
            for i, sig in enumerate(signals):
                if i:
                    time.sleep(gap)
                os.kill(proc.pid, sig)
            break
    t0 = time.monotonic()
    try:
        out = proc.communicate(timeout=60)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
    return "".join(lines) + out, proc.returncode, time.monotonic() - t0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie waiting for its (dead) parent counts as gone
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("signals", [(signal.SIGTERM,), (signal.SIGINT, signal.SIGINT)],
                         ids=["sigterm", "ctrl-c-twice"])
def test_interrupt_kills_busy_workers_and_keeps_results(pytester, signals):
    pytester.makepyfile(test_int=INTERRUPTED)
    out, status, seconds = _signal_midway(pytester.path, signals)
    assert status in (2, -signal.SIGINT), out
    assert seconds < 20, f"{seconds:.1f} s to exit"
    if signals == (signal.SIGTERM,):
        assert "KeyboardInterrupt: terminated (SIGTERM)" in out
    data = read_json(pytester, "o.json")
    assert {(r["test"].split("::")[1], r["env"]) for r in data["results"]} == {
        ("test_a", "baremetal"), ("test_a", "control")}
    pids = [meta["pid"] for meta in data["environments"].values()]
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in pids if _alive(p)], "a worker outlived its session"


# --------------------------------------------------------------------------
# bad input: a usage error with a specific message, never a traceback


@pytest.mark.parametrize("args, ini, words", [
    (["--virt-memory=lots"], "", "*--virt-memory: cannot read 'lots'; use e.g. 1024, 512m or 2g*"),
    (["--virt-memory=64m"], "", "*--virt-memory: 64 MiB is too little for a worker (at least 128)*"),
    (["--virt-vm-accel=fast"], "", "*argument --virt-vm-accel: invalid choice: 'fast' (choose from*"),
    (["--virt-timeout=0"], "", "*--virt-timeout: must be positive, got '0'*"),
    (["--virt-seed=x"], "", "*--virt-seed: expected a whole number, got 'x'*"),
    (["--virt-warmup=-1"], "", "*--virt-warmup: must be 0 or more*"),
    (["--virt-cpus=1-0"], "", "*--virt-cpus: range '1-0' runs backwards*"),
    (["--virt-envs=baremetal,9lives=container"], "", "*--virt-envs: invalid environment name '9lives'*"),
    (["--virt-envs=baremetal,container"], "virt_env_options =\n    container: imgae=x",
     "*unknown option(s) imgae for kind 'container'; known: *image*"),
    (["--virt-envs=baremetal"], "virt_env_options =\n    nope: x=1",
     "*virt_env_options: options for unknown environment(s) nope; environments of this run: baremetal*"),
    (["--virt-envs=baremetal"], "virt_env_options =\n    just words",
     "*virt_env_options: expected 'NAME: key=value ...', got 'just words'*"),
    (["--virt-require=podman"], "", "*--virt-require: unknown environment 'podman'*"),
])
def test_bad_values_are_usage_errors(pytester, args, ini, words):
    if ini:
        pytester.makeini("[pytest]\n" + ini + "\n")
    pytester.makepyfile("def test_a(): pass")
    result = pytester.runpytest_subprocess("--virt-compare", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([words])
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


#: One malformed claim per rule of the grammar (tests/test_claims.py covers
#: the parser itself): the column and the reason.
@pytest.mark.parametrize("claim, words", [
    ("baremetal $ 2", "*column 11: unexpected character '$'*"),
    ("baremetal 2 * control", "*column 11: expected a comparison (<=, >=, <, >, ~=), found '2'*"),
    ("control <= 0 * baremetal", "*column 12: the factor must be positive*"),
    ("control <= baremetal - 100%", "*a percentage below the baseline must be under 100%*"),
    ("control ~= baremetal", "*'~=' needs a tolerance: expected '+- P%' or '+- TIME', found the end of the claim*"),
    ("control <= 2 * baremetal + 5%", "*use either a factor or a percentage, not both*"),
    ("control <= baremetal +- 5%", "*'+-' tolerances go with '~='*"),
    ("control <= baremetal baremetal", "*unexpected 'baremetal' after the end of the claim*"),
    ("control <= 2 * control", "*the claim compares 'control' with itself*"),
    ("", "*empty claim*"),
    ("vmm <= 2 * baremetal", "*unknown environment 'vmm'; environments of this run: baremetal, control*"),
])
def test_each_claim_rule_is_a_usage_error(pytester, claim, words):
    pytester.makepyfile("def test_a(): pass")
    result = pytester.runpytest_subprocess("--virt-compare", "--virt-envs=baremetal,control=baremetal",
                                           f"--virt-claim={claim}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([words])
    assert "Traceback" not in result.stderr.str()


def test_missing_guest_kernel_skips_or_errors_when_required(pytester):
    """An environment that cannot start: a skip with the reason, an error
    under --virt-require, never a traceback (no guest is booted)."""
    pytester.makepyfile("""
        import pytest
        @pytest.mark.virt(claims=["vm <= 100 * baremetal"], rounds=1)
        def test_a():
            pass
        def test_fixture(vm):
            pass
    """)
    args = ["--virt-compare", "--virt-envs=baremetal,vm", "--virt-vm-kernel=/nonexistent", "-p", "no:cacheprovider"]
    result = pytester.runpytest_subprocess(*args, "-rs")
    result.assert_outcomes(skipped=2)
    text = " ".join(result.stdout.str().split())
    assert ("guest kernel '/nonexistent' (vm option kernel / --virt-vm-kernel) does not exist" in text
            or "libvirt-python is not installed" in text), text
    required = pytester.runpytest_subprocess(*args, "--virt-require=vm")
    assert required.ret == pytest.ExitCode.TESTS_FAILED
    required.stdout.fnmatch_lines(["*required environment(s) could not start (--virt-require)*"])
    required.stdout.fnmatch_lines(["*environment 'vm' is required (--virt-require) but unavailable*"])
    text = required.stdout.str() + required.stderr.str()
    assert "Traceback" not in text and "During handling" not in text
