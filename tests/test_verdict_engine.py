"""The verdict engine through pytest itself: worker processes, rounds,
outcomes pytest users expect (xfail, KeyboardInterrupt), and the noise
sentinel's rule. Baremetal environments only; no timing is asserted."""


import pytest
from virthelp import aa_args, read_json

from pytest_virtoverhead.guest import noise
from pytest_virtoverhead.session.planning import auto_calls, max_retries, request_calls

BASE = aa_args(seed=5)

PIDS = """
import os
import pytest

@pytest.mark.virt(claims=["control <= 10 * baremetal"])
def test_seeds():
    pass
"""


@pytest.mark.parametrize("mode", ["paired", "random"])
def test_rounds_rotate_over_fresh_worker_processes(pytester, mode):
    pytester.makepyfile(test_p=PIDS)
    result = pytester.runpytest_subprocess(*BASE, "--virt-processes=3", "--virt-rounds=6",
                                           f"--virt-hash-seed={mode}", "--virt-json=o.json")
    assert result.ret == 0
    data = read_json(pytester, "o.json")
    procs = {r["env"]: r["processes"] for r in data["results"]}
    pids = {p["pid"] for ps in procs.values() for p in ps}
    assert len(pids) == 6  # 3 processes x 2 environments, each its own interpreter
    for ps in procs.values():
        assert [p["process"] for p in ps] == [1, 2, 3]
        assert all(p["rounds"] == 2 for p in ps)  # every process serves two of the six rounds
    seeds = {env: [p["hash_seed"] for p in ps] for env, ps in procs.items()}
    assert (seeds["baremetal"] == seeds["control"]) == (mode == "paired")
    assert len(set(seeds["baremetal"])) == 3
    [claim] = data["claims"]
    assert claim["processes"] == 3 and claim["rounds"] == 6 and claim["method"].startswith("processes")


def test_calls_per_round_and_their_interleaving(pytester):
    pytester.makepyfile(test_c="""
        import pytest
        @pytest.mark.virt()
        def test_fast():
            pass
    """)
    result = pytester.runpytest_subprocess(*BASE, "--virt-processes=1", "--virt-rounds=2", "--virt-calls=3",
                                           "--virt-json=o.json")
    assert result.ret == 0
    data = read_json(pytester, "o.json")
    for r in data["results"]:
        assert r["calls"] == 3 and len(r["samples"]) == 2 and len(r["raw_samples"]) == 6
    # control's rounds carry the baseline calls of control's own block, the ones it is paired with
    control = next(r for r in data["results"] if r["env"] == "control")
    assert all("baseline_value" in x for x in control["rounds"])


XFAIL = """
import pytest

@pytest.mark.virt()
@pytest.mark.xfail(reason="known bug 12")
def test_xfails():
    assert False

@pytest.mark.virt()
@pytest.mark.xfail(reason="fixed already")
def test_xpasses():
    pass

@pytest.mark.virt()
@pytest.mark.xfail(reason="must fail", strict=True)
def test_strict_xpass():
    pass
"""


def test_xfail_xpass_and_strict_match_plain_pytest(pytester):
    pytester.makepyfile(test_x=XFAIL)
    plain = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rxX")
    compared = pytester.runpytest_subprocess(*BASE, "--virt-rounds=2", "-rxX")
    plain.assert_outcomes(xfailed=1, xpassed=1, failed=1)
    compared.assert_outcomes(xfailed=1, xpassed=1, failed=1)
    compared.stdout.fnmatch_lines(["*XFAIL*test_xfails*known bug 12*"])
    compared.stdout.fnmatch_lines(["*XPASS*test_xpasses*fixed already*"])
    compared.stdout.fnmatch_lines(["*XPASS(strict)*must fail*"])


INTERRUPTS = """
import pytest

@pytest.mark.virt()
def test_interrupt():
    raise KeyboardInterrupt

@pytest.mark.virt()
def test_exit():
    pytest.exit("stop here")

@pytest.mark.virt(claims=["control <= 10 * baremetal"])
def test_after():
    pass
"""


def test_keyboard_interrupt_and_pytest_exit_in_a_test_fail_at_once(pytester):
    pytester.makepyfile(test_i=INTERRUPTS)
    result = pytester.runpytest_subprocess(*BASE, "--virt-rounds=2", "--virt-timeout=60")
    result.assert_outcomes(failed=2, passed=1)
    result.stdout.fnmatch_lines(["*the test raised KeyboardInterrupt*"])
    result.stdout.fnmatch_lines(["*the test raised pytest.exit(): stop here*"])
    assert "Traceback" not in result.stdout.str()
    assert result.duration < 60  # answered at once, not after --virt-timeout


def test_an_environment_that_cannot_start_skips_every_test_that_needs_it(pytester):
    # Issue 12, point 1: the second and third tests used to end in INTERNALERROR.
    pytester.makepyfile(test_u="""
        import pytest
        @pytest.mark.virt(claims=["container <= 2 * baremetal"])
        def test_one():
            pass
        @pytest.mark.virt(claims=["container <= 2 * baremetal"])
        def test_two():
            pass
        @pytest.mark.virt()
        def test_three():
            pass
    """)
    result = pytester.runpytest_subprocess(
        "--virt-compare", "--virt-envs=baremetal,container", "--virt-rounds=2", "-p", "no:cacheprovider",
        "-o", "virt_env_options=container: docker_url=unix:///nonexistent.sock", "-rs")
    assert result.ret == 0
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    result.assert_outcomes(skipped=3)


def test_inconclusive_says_what_would_decide_it(pytester):
    pytester.makepyfile(test_n="""
        import os, time
        import pytest
        @pytest.mark.virt(claims=["control ~= baremetal +- 0.1%"])
        def test_noisy():
            time.sleep(0.01)
    """)
    result = pytester.runpytest_subprocess(*BASE, "--virt-rounds=4", "--virt-processes=1", "--virt-json=o.json")
    assert result.ret == 0
    data = read_json(pytester, "o.json")
    [claim] = data["claims"]
    if claim["verdict"] == "inconclusive":
        assert claim["resolution"] > 0 and "rounds_needed" in claim
        result.stdout.fnmatch_lines(["*the data resolve +-*"])


def test_auto_calls():
    # 150 ms of the baseline per round, at most 10 calls, and no more than
    # the slower side of the block fits in 0.5 s.
    assert auto_calls({"b": [0.08, 0.06]}, "b") == 3  # ceil(0.15 / 0.06)
    assert auto_calls({"b": [0.04]}, "b") == 4  # ceil(3.75); 0.5 / 0.04 = 12.5 allows it
    assert auto_calls({"b": [0.02, 0.013]}, "b") == 10  # ceil(11.5) capped at 10
    assert auto_calls({"b": [0.007], "vm": [0.1]}, "b") == 5  # floor(0.5 / 0.1)
    assert auto_calls({"b": [0.002], "vm": [0.3]}, "b") == 1  # floor(0.5 / 0.3)
    assert auto_calls({"b": [float("inf")]}, "b") == 1  # pytest-benchmark repeats itself
    assert auto_calls({}, "b") == 1
    # a TCG guest's requests cost far more than its calls: they cap the count
    assert auto_calls({"b": [0.002], "vm": [0.02]}, "b", {"b": [0.003], "vm": [0.4]}) == 1
    assert auto_calls({"b": [0.002], "vm": [0.02]}, "b", {"b": [0.003], "vm": [0.1]}) == 5
    assert max_retries(12) == 3 and max_retries(4) == 2


def test_request_calls():
    # two calls a request from four calls a block on; an odd one alone at the end
    assert request_calls(10) == [2, 2, 2, 2, 2]
    assert request_calls(5) == [2, 2, 1]
    assert request_calls(4) == [2, 2]
    assert request_calls(3) == [1, 1, 1]
    assert request_calls(1) == [1]
    # pytest-benchmark: each call its own request
    assert request_calls(10, grouped=False) == [1] * 10


def test_noise_rule():
    assert noise.disturbed(0.0, 0, [{"wall": 0.06, "nivcsw": 2}]) == []
    assert noise.disturbed(0.25, 5, []) == ["steal 25% of the pinned CPUs' time"]
    assert noise.disturbed(0.5, 1, []) == []  # one tick of steal is not evidence
    why = noise.disturbed(0.0, 0, [{"env": "vm", "wall": 0.05, "nivcsw": 9}])
    assert why == ["vm preempted 9 times in 0.050 s"]
    assert noise.steal_fraction((10, 1000), (30, 1100)) == (0.2, 20)
    # off the CPU: 0.02 of 0.1 s; 10 points more than the typical round is fine, 30 is not
    assert noise.off_cpu({"wall": 0.1, "cpu": 0.08}) == pytest.approx(0.2)
    assert noise.off_cpu_rise(0.2, [0.1]) is None  # too little history
    assert noise.off_cpu_rise(0.2, [0.1, 0.1, 0.5]) == pytest.approx(0.1)
    assert noise.disturbed(0.0, 0, [{"env": "c", "offcpu_rise": 0.1}]) == []
    assert noise.disturbed(0.0, 0, [{"env": "c", "offcpu_rise": 0.3}]) == ["c off the CPU 30% more of its round than usual"]


def test_host_virtualization_reads_the_evidence(monkeypatch):
    files = {
        "/proc/cpuinfo": "processor: 0\nflags\t\t: fpu vme hypervisor lahf_lm\n",
        "/sys/devices/system/clocksource/clocksource0/available_clocksource": "tsc kvm-clock",
    }
    monkeypatch.setattr(noise, "_read", lambda path: files.get(path, ""))
    info = noise.host_virtualization()
    assert info["virtual"] and info["hypervisor"] == "KVM"
    assert noise.host_label(info) == "the host, itself a KVM guest"
    files.clear()
    files["/proc/cpuinfo"] = "flags\t\t: fpu vme lahf_lm\n"
    assert noise.host_virtualization() == {"virtual": False, "hypervisor": None, "evidence": []}
    assert noise.host_label({"virtual": False}) == "the host"


def test_the_deciding_bound_is_the_one_nearest_the_estimate():
    from pytest_virtoverhead.judge.claims import parse_claim
    from pytest_virtoverhead.session.planning import deciding_bound as _deciding_bound

    near = parse_claim("c2 ~= container +- 3%")
    # estimate 1.086 in [0.939, 1.256]: it can only fail, once the interval clears 1.03
    assert _deciding_bound(near, 1.086, (0.939, 1.256)) == pytest.approx(1.03)
    assert _deciding_bound(near, 0.99, (0.95, 1.02)) == pytest.approx(0.97)
    assert _deciding_bound(parse_claim("vm <= 2 * baremetal"), 2.1, (1.9, 2.3)) == 2
    assert _deciding_bound(parse_claim("vm <= 2 * baremetal"), 1.5, (1.4, 1.6)) is None


BUSY = """
import os, time
import pytest

@pytest.mark.virt()
def test_busy():
    if os.environ["VIRTOVERHEAD_ENV"] == "control":
        with open(os.path.join({where!r}, f"busy-{{os.getpid()}}"), "w"):
            pass
        time.sleep(120)
"""


def test_a_busy_host_worker_dies_with_a_sigkilled_pytest(pytester, tmp_path):
    # Issue 12: a baremetal worker in the middle of a job outlived a
    # SIGKILLed pytest until its job ended. Now the environment's worker
    # notices its parent is gone, and its worker processes die with it.
    import os
    import signal
    import subprocess
    import sys
    import time

    pytester.makepyfile(test_busy=BUSY.format(where=str(tmp_path)))
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--virt-compare",
                             "--virt-envs=baremetal,control=baremetal", "--virt-warmup=0", "--virt-processes=1",
                             "--virt-cpus=0"],
                            cwd=str(pytester.path), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        busy = []
        while not busy and time.monotonic() < deadline:
            busy = [p for p in tmp_path.iterdir() if p.name.startswith("busy-")]
            time.sleep(0.1)
        assert busy, "the test never started in the control environment"
        pid = int(busy[0].name.split("-")[1])
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and os.path.exists(f"/proc/{pid}"):
            with open(f"/proc/{pid}/stat") as f:
                if f.read().split(")")[-1].split()[0] == "Z":
                    break  # a zombie: ended, waiting for its reaper
            time.sleep(0.1)
        alive = os.path.exists(f"/proc/{pid}") and open(f"/proc/{pid}/stat").read().split(")")[-1].split()[0] != "Z"
        assert not alive, "the busy worker process outlived the SIGKILLed pytest"
    finally:
        if proc.poll() is None:
            proc.kill()


def test_auto_processes_one_per_round_and_a_block_for_two_non_baselines(pytester, monkeypatch):
    # --virt-processes=auto (the default): one worker process per round in a
    # baremetal environment. A claim between two environments that are not
    # the baseline gets a block of its own: its rounds pair c2's calls with
    # control's calls of that block, in one process slot on both sides.
    monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)
    pytester.makepyfile(test_p="""
        import pytest
        @pytest.mark.virt(claims=["c2 ~= control +- 90%"])
        def test_pair():
            sum(range(1000))
    """)
    result = pytester.runpytest_subprocess("--virt-compare", "--virt-envs=baremetal,control=baremetal,c2=baremetal",
                                           "--virt-seed=5", "-p", "no:cacheprovider", "--virt-rounds=3",
                                           "--virt-calls=2", "--virt-json=o.json")
    assert result.ret == 0, result.stdout.str()
    data = read_json(pytester, "o.json")
    assert data["statistics"]["processes"] == "auto"
    procs = {r["env"]: r["processes"] for r in data["results"]}
    assert {env: [p["process"] for p in ps] for env, ps in procs.items()} == {
        "baremetal": [1, 2, 3], "control": [1, 2, 3], "c2": [1, 2, 3]}
    assert all(p["rounds"] == 1 for ps in procs.values() for p in ps)
    [test] = data["tests"]
    assert test["pair_calls"] == {"c2/control": 2}
    c2 = next(r for r in data["results"] if r["env"] == "c2")
    used = [x for x in c2["rounds"] if x["used"]]
    assert len(used) == 3
    for x in used:
        pair = x["paired_with"]["control"]
        assert pair["process"] == x["process"] and pair["value"] > 0 and pair["ref_value"] > 0
    [claim] = data["claims"]
    assert claim["env"] == "c2" and claim["baseline"] == "control" and claim["rounds"] == 3
    assert claim["processes"] == 3
