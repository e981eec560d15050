"""pytest-xdist: one measuring CPU per worker, one report for the run
(issue 23). End to end through pytester with baremetal environments and
an A/A control (durations from time.sleep, as in test_plugin_e2e); the CPU
choice, the result codec and Holm's family over workers as units.

The CPU locks of these runs live in a directory of their own, so a run here
never waits for (nor blocks) another measuring session on the machine.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest
from virthelp import aa_args, read_json

from pytest_virtoverhead.judge.claims import parse_claim
from pytest_virtoverhead.results import ItemResult
from pytest_virtoverhead.results.wire import from_plain, to_plain
from pytest_virtoverhead.session import hostlock
from pytest_virtoverhead.session.judging import correct
from pytest_virtoverhead.session.xdistcpus import assign, auto_cpus, tx_count

pytest.importorskip("xdist")

TWO_CPUS = len(os.sched_getaffinity(0)) >= 2
needs_two = pytest.mark.skipif(not TWO_CPUS, reason="needs two CPUs to give two workers one each")

AA = aa_args(rounds=4, seed=11)

SUITE = """
import os, time
import pytest

def pause():
    time.sleep(0.004)

@pytest.mark.virt(claims=["control ~= baremetal +- 60%"])
@pytest.mark.parametrize("i", range({n}))
def test_aa(i):
    pause()

class TestGroup:
    @pytest.mark.xdist_group("g")
    @pytest.mark.virt(claims=["control ~= baremetal +- 60%"])
    def test_grouped(self):
        pause()
"""


@pytest.fixture(autouse=True)
def _own_lock_dir(tmp_path, monkeypatch):
    monkeypatch.setenv(hostlock.LOCK_DIR_ENV, str(tmp_path / "locks"))


def two_cpus() -> str:
    return ",".join(map(str, sorted(os.sched_getaffinity(0))[:2]))


# -- the CPUs -----------------------------------------------------------------

def test_tx_count():
    assert tx_count(["popen"] * 3) == 3
    assert tx_count(["2*popen", "popen//python=python3"]) == 3


def test_auto_leaves_the_housekeeping_core_and_smt_siblings():
    smt = {0: "0,4", 4: "0,4", 1: "1,5", 5: "1,5", 2: "2,6", 6: "2,6", 3: "3,7", 7: "3,7"}
    assert auto_cpus(range(8), smt.__getitem__) == [3, 2, 1]
    assert auto_cpus([0, 1], str) == [1]
    assert auto_cpus([3], str) == [3]  # the only core measures


def test_assign_one_cpu_per_worker():
    assert assign("0-3", 2, "-n 2", [0, 1, 2, 3], str) == [(0,), (1,)]
    assert assign("auto", 3, "-n 3", range(8), lambda c: str(c % 4)) == [(3,), (2,), (1,)]
    assert assign("all", 1, "-n 1", [0, 1], str) == [None]


@pytest.mark.parametrize("text, workers, words", [
    ("0-1", 3, ["-n 3: 3 pytest-xdist workers need 3 measuring CPUs", "--virt-cpus=0-1 names 2",
                "Pass -n 2", "--virt-cpus=1-3"]),
    ("auto", 2, ["--virt-cpus=auto offers 1 measuring CPU(s) here: 2 (CPU 0-1 kept for the host's "
                 "housekeeping; CPU 3 SMT sibling(s) of a measuring CPU)", "-n 1 (or -n auto)", "--virt-cpus=2-3"]),
    ("all", 2, ["would share every CPU under --virt-cpus=all", "e.g. --virt-cpus=0-1"]),
])
def test_too_many_workers_say_why_and_what_to_pass(text, workers, words):
    with pytest.raises(ValueError) as info:
        assign(text, workers, f"-n {workers}", [0, 1, 2, 3], lambda c: str(c // 2))  # two cores, two threads each
    for word in words:
        assert word in str(info.value)
    assert "each time the other's work" in str(info.value)


# -- the results cross whole --------------------------------------------------

def test_an_item_result_crosses_whole():
    pytest.importorskip("execnet")
    from execnet.gateway_base import dumps, loads

    res = ItemResult.from_samples("t.py::a", ["baremetal", "control"], "baremetal",
                                  {"baremetal": [1.0, 1.1, 0.9, 1.0], "control": [1.2, 1.1, 1.3, 1.2]}, processes=2)
    res.pair_calls[("control", "baremetal")] = 3
    res.phases.add("rounds", 1.5, 3)
    res.phases.stop()
    back = from_plain(loads(dumps(to_plain(res))))
    assert back.phases.to_json() == res.phases.to_json()
    back.phases = res.phases  # PhaseClock has no __eq__
    assert back == res
    with pytest.raises(ValueError, match="unknown result class"):
        from_plain({"__virtoverhead__": "os.system", "fields": {}})


def _claimed(nodeid: str, theta: float, se: float):
    """A result with one judged claim whose estimate is given."""
    from pytest_virtoverhead.judge import stats
    from pytest_virtoverhead.judge.verdict import INCONCLUSIVE
    from pytest_virtoverhead.results import ClaimResult

    claim = parse_claim("control <= 1.05 * baremetal")
    half = 2.0 * se
    est = stats.Estimate(theta, se, 10.0, theta - half, theta + half, 4, 12, 0.95, "t")
    res = ItemResult(nodeid=nodeid, envs=["baremetal", "control"], baseline="baremetal")
    res.claims.append(ClaimResult(nodeid, claim, math.exp(theta), (math.exp(est.lo), math.exp(est.hi)),
                                  INCONCLUSIVE, estimate=est))
    return res


def correct_verdicts(results, confidence, correction, peers=()):
    """judging.correct, its new verdicts put in the results (as the session does)."""
    method, corrected = correct(results, confidence, correction, peers)
    for res, claims in zip(results, corrected):
        res.claims = list(claims)
    return method


def test_holm_with_peers_is_holm_over_the_union():
    from pytest_virtoverhead.session.verdicts import claim_p_values

    specs = [("a", 0.0, 0.01), ("b", 0.2, 0.05), ("c", 0.045, 0.01), ("d", 0.01, 0.005)]
    whole = [_claimed(n, t, s) for n, t, s in specs]
    correct_verdicts(whole, 0.95, "holm")
    part1 = [_claimed(n, t, s) for n, t, s in specs[:2]]
    part2 = [_claimed(n, t, s) for n, t, s in specs[2:]]
    p2 = [p for r in part2 for p in claim_p_values(r.claims[0])]
    p1 = [p for r in part1 for p in claim_p_values(r.claims[0])]
    m1 = correct_verdicts(part1, 0.95, "holm", peers=p2)
    correct_verdicts(part2, 0.95, "holm", peers=p1)
    assert m1["family_size"] == 4
    assert [r.claims[0].verdict for r in part1 + part2] == [r.claims[0].verdict for r in whole]
    assert [r.claims[0].p_adjusted for r in part1 + part2] == pytest.approx([r.claims[0].p_adjusted for r in whole])


def test_vm_starts_take_turns(tmp_path):
    held = subprocess.run([sys.executable, "-c", (
        "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR)\n"
        "try:\n    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB); print('free')\n"
        "except OSError:\n    print('busy')"), str(tmp_path / "start-vm.lock")], capture_output=True, text=True,
        check=False)
    assert "No such file" in held.stderr  # no lock file before the first start
    with hostlock.start_lock("vm", str(tmp_path)):
        out = subprocess.run([sys.executable, "-c", (
            "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR)\n"
            "try:\n    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB); print('free')\n"
            "except OSError:\n    print('busy')"), str(tmp_path / "start-vm.lock")],
            capture_output=True, text=True, check=True).stdout
    assert out.strip() == "busy"


# -- end to end ---------------------------------------------------------------

def _document(pytester):
    return read_json(pytester, "out.json")


@needs_two
def test_two_workers_one_cpu_each_one_report(pytester):
    pytester.makepyfile(test_suite=SUITE.format(n=4))
    result = pytester.runpytest_subprocess(*AA, "-n", "2", f"--virt-cpus={two_cpus()}", "--virt-json=out.json",
                                           "--virt-markdown=out.md", "--virt-report=out.html")
    result.assert_outcomes(passed=5)
    out = result.stdout.str()
    assert out.count("virtoverhead: comparison") == 1
    result.stdout.fnmatch_lines(["*cpus=one per xdist worker (CPU *)*", "*claims:*",
                                 "*control: baremetal*cpuset=gw0:*gw1:*"])
    data = _document(pytester)
    assert len(data["tests"]) == 5 and len(data["claims"]) == 5
    assert {c["verdict"] for c in data["claims"]} <= {"pass", "inconclusive"}
    workers = data["xdist"]["workers"]
    assert sorted(workers) == ["gw0", "gw1"]
    assert sorted(w["cpus"][0] for w in workers.values()) == sorted(int(c) for c in two_cpus().split(","))
    assert sorted(t for w in workers.values() for t in w["tests"]) == sorted(t["test"] for t in data["tests"])
    assert data["seed"] == 11
    assert (pytester.path / "out.md").read_text().count("test_aa") >= 4
    assert "test_grouped" in (pytester.path / "out.html").read_text()


@needs_two
@pytest.mark.parametrize("dist", ["loadscope", "loadgroup"])
def test_dist_modes(pytester, dist):
    pytester.makepyfile(test_suite=SUITE.format(n=2))
    result = pytester.runpytest_subprocess(*AA, "-n", "2", f"--dist={dist}", f"--virt-cpus={two_cpus()}",
                                           "--virt-json=out.json")
    result.assert_outcomes(passed=3)
    assert len(_document(pytester)["claims"]) == 3


@needs_two
def test_a_failed_claim_fails_its_test_under_xdist(pytester):
    pytester.makepyfile("""
        import time
        import pytest

        @pytest.mark.virt(claims=["control >= 3 * baremetal"])
        def test_fails():
            time.sleep(0.004)

        @pytest.mark.virt(claims=["control ~= baremetal +- 60%"])
        def test_passes():
            time.sleep(0.004)
    """)
    result = pytester.runpytest_subprocess(*AA, "-n", "2", f"--virt-cpus={two_cpus()}", "--junitxml=junit.xml")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*claim 'control >= 3 * baremetal' fail: ratio *"])
    assert "claim 'control &gt;= 3 * baremetal' fail" in (pytester.path / "junit.xml").read_text()


@needs_two
def test_holm_is_one_family_over_the_workers(pytester):
    pytester.makepyfile(test_suite=SUITE.format(n=3))
    result = pytester.runpytest_subprocess(*AA, "-n", "2", f"--virt-cpus={two_cpus()}", "--virt-correction=holm",
                                           "--virt-json=out.json")
    result.assert_outcomes(passed=4)
    data = _document(pytester)
    assert data["verdict_method"]["family_size"] == 4
    assert all(c["verdict_uncorrected"] and c["p_adjusted"] is not None for c in data["claims"])
    assert len(data["xdist"]["workers"]) == 2
    # Each worker corrected its own claims within the whole family (through the controller).
    assert [w["family_size"] for w in data["xdist"]["workers"].values()] == [4, 4]
    result.stdout.fnmatch_lines(["*Holm's correction over 4 claims*"])


@needs_two
def test_tx_popen_workers_get_a_cpu_each(pytester):
    pytester.makepyfile(test_suite=SUITE.format(n=2))
    result = pytester.runpytest_subprocess(*AA, "-d", "--tx", "2*popen", f"--virt-cpus={two_cpus()}",
                                           "--virt-json=out.json")
    result.assert_outcomes(passed=3)
    workers = _document(pytester)["xdist"]["workers"]
    assert len({tuple(w["cpus"]) for w in workers.values()}) == len(workers) == 2


@pytest.mark.parametrize("args, words", [
    (["-n", "3", "--virt-cpus=0"], ["-n 3: 3 pytest-xdist workers need 3 measuring CPUs",
                                   "--virt-cpus=0 names 1 CPU(s)"]),
    (["-d", "--tx", "3*popen", "--virt-cpus=0"], ["--tx 3*popen: 3 pytest-xdist workers need 3"]),
    (["-n", "2", "--virt-cpus=all"], ["would share every CPU under --virt-cpus=all"]),
    (["-n", "1", "--dist=each"], ["--dist each runs every test in every worker"]),
])
def test_more_workers_than_cpus_is_a_usage_error(pytester, args, words):
    pytester.makepyfile(test_suite=SUITE.format(n=1))
    result = pytester.runpytest_subprocess(*AA, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    for word in words:
        result.stderr.fnmatch_lines([f"*{word}*"])


def test_auto_asks_for_one_worker_per_measuring_cpu(pytester):
    pytester.makepyfile(test_suite=SUITE.format(n=1))
    result = pytester.runpytest_subprocess(*AA, "-n", "auto")
    n = len(auto_cpus(os.sched_getaffinity(0)))
    result.stdout.fnmatch_lines([f"*created: {n}/{n} worker*"])
    result.assert_outcomes(passed=2)


HOLD = (
    "import sys, time\n"
    "from pytest_virtoverhead.session import hostlock\n"
    "locks = hostlock.CpuLocks(sys.argv[1])\n"
    "assert not locks.try_lock([int(c) for c in sys.argv[2].split(',')], hostlock.session_info('h', '/h'))\n"
    "print('locked', flush=True)\n"
    "time.sleep(60)\n"
)


@needs_two
def test_a_cpu_another_session_holds_is_named_on_the_controller(pytester, tmp_path):
    """Never a worker waiting in silence: the controller names the holder
    (and refuses at once under --virt-cpu-wait=0)."""
    cpu = sorted(os.sched_getaffinity(0))[0]
    proc = subprocess.Popen([sys.executable, "-c", HOLD, os.environ[hostlock.LOCK_DIR_ENV], two_cpus()],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        pytester.makepyfile(test_suite=SUITE.format(n=1))
        result = pytester.runpytest_subprocess(*AA, "-n", "2", f"--virt-cpus={two_cpus()}", "--virt-cpu-wait=0")
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines([f"*CPU {cpu} is in use by the pytest-virtoverhead session of pid {proc.pid}*"])
        # Waiting: said at once on the controller; when the wait ends, the
        # workers' tests fail with the reason (no hang).
        waited = pytester.runpytest_subprocess(*AA, "-n", "2", f"--virt-cpus={two_cpus()}", "--virt-cpu-wait=1")
        waited.stderr.fnmatch_lines([f"*CPU {cpu} is in use by *: the xdist worker given it waits for it, up to 1 s*"])
        waited.assert_outcomes(failed=2)
        waited.stdout.fnmatch_lines(["*not measured: --virt-cpus: CPU * is in use by*"])
    finally:
        proc.kill()
        proc.wait()


def test_benchmark_fixture_still_times_under_xdist(pytester):
    """The environments' pytest sessions are not xdist workers: the
    ``benchmark`` fixture times there (pytest-benchmark turns itself off in
    a session that sees PYTEST_XDIST_WORKER)."""
    pytest.importorskip("pytest_benchmark")
    pytester.makepyfile("""
        import pytest

        def work():
            return sum(i * i for i in range(500))

        @pytest.mark.virt(claims=["control ~= baremetal +- 60%"])
        def test_bench(benchmark):
            benchmark.pedantic(work, rounds=5, iterations=10)
    """)
    result = pytester.runpytest_subprocess(*AA, "-n", "1", "--virt-rounds=2", "--virt-json=out.json")
    result.assert_outcomes(passed=1)
    assert {r["source"] for r in _document(pytester)["results"]} == {"benchmark"}
