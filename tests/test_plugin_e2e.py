"""End to end through pytest itself (pytester), with baremetal environments.

Durations come from time.sleep, so ratios are known in advance (sleeping is
not CPU speed): these tests check the plugin's mechanics, not a machine.
"""

import json
import statistics

import pytest
from virthelp import aa_args, read_json

AA = aa_args("--virt-processes=1", rounds=8, seed=7)

SLEEPY = """
import os, time
import pytest

def pause():
    # The environment's name is set in every worker.
    name = os.environ["VIRTOVERHEAD_ENV"]
    time.sleep(FACTOR * 0.02 if name == "control" else 0.02)

FACTOR = {factor}

@pytest.mark.virt(claims={claims!r})
def test_sleep():
    pause()
"""


def write_sleepy(pytester, factor, claims):
    pytester.makepyfile(test_sleepy=SLEEPY.format(factor=factor, claims=claims))


def test_without_compare_marked_tests_run_as_usual(pytester):
    pytester.makepyfile("""
        import pytest
        @pytest.mark.virt(claims=["container <= 1.05 * baremetal"])
        def test_a():
            assert 1 + 1 == 2
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert "virtoverhead: comparison" not in result.stdout.str()


def test_aa_pass_and_fail(pytester):
    write_sleepy(pytester, 1, ["control <= 1.5 * baremetal", "control >= 1.5 * baremetal"])
    result = pytester.runpytest_subprocess(*AA, "--junitxml=junit.xml", "--virt-json=out.json")
    assert result.ret == 1
    result.stdout.fnmatch_lines([
        "*virtoverhead: comparison (baseline baremetal, seed 7)*",
        "*test_sleepy.py::test_sleep*baremetal*baseline*",
        "*pass*control <= 1.5 * baremetal*ratio *",
        "*FAIL*control >= 1.5 * baremetal*ratio *",
    ])
    result.stdout.fnmatch_lines(["*claim 'control >= 1.5 * baremetal' fail: ratio *, 95% CI [[]*]*"])
    data = read_json(pytester, "out.json")
    [claim] = [c for c in data["claims"] if c["claim"] == "control <= 1.5 * baremetal"]
    # Both sides sleep 20 ms: the ratio sits near 1 (loose bounds: a busy
    # machine adds scheduling delay to either side).
    assert 0.67 < claim["ratio"] < 1.5
    junit = (pytester.path / "junit.xml").read_text()
    assert "control &gt;= 1.5 * baremetal" in junit and "<failure" in junit


def test_ratio_of_two(pytester):
    write_sleepy(pytester, 2, ["control ~= 2 * baremetal +- 30%", "control <= baremetal + 40%"])
    result = pytester.runpytest_subprocess(*AA, "--virt-rounds=9", "--virt-json=out.json")
    data = read_json(pytester, "out.json")
    verdicts = {c["claim"]: c["verdict"] for c in data["claims"]}
    assert verdicts == {"control ~= 2 * baremetal +- 30%": "pass", "control <= baremetal + 40%": "fail"}
    assert result.ret == 1


INCONCLUSIVE = """
import os, time, itertools
import pytest

_cycle = itertools.cycle([0.01, 0.05])

@pytest.mark.virt(claims=["control <= 1.05 * baremetal"])
def test_noisy():
    if os.environ["VIRTOVERHEAD_ENV"] == "control":
        time.sleep(next(_cycle))
    else:
        time.sleep(0.03)
"""


def test_inconclusive_passes_unless_strict(pytester):
    pytester.makepyfile(test_noisy=INCONCLUSIVE)
    # One call per round: control alternates 10 and 50 ms from round to round.
    AA = [*globals()["AA"], "--virt-calls=1"]
    result = pytester.runpytest_subprocess(*AA)
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*inconclusive*control <= 1.05 * baremetal*"])
    strict = pytester.runpytest_subprocess(*AA, "--virt-strict")
    assert strict.ret == 1
    strict.stdout.fnmatch_lines(["*claim 'control <= 1.05 * baremetal' inconclusive*"])


def test_json_schema(pytester):
    write_sleepy(pytester, 1, ["control <= 1.5 * baremetal"])
    pytester.runpytest_subprocess(*AA, "--virt-processes=4", "--virt-json=sub/out.json")
    data = json.loads((pytester.path / "sub" / "out.json").read_text())
    assert data["version"] == 3 and data["machine"]["name"]
    assert set(data["environments"]) == {"baremetal", "control"}
    assert data["environments"]["control"]["kind"] == "baremetal"
    results = {r["env"]: r for r in data["results"]}
    assert set(results) == {"baremetal", "control"}
    for r in results.values():
        assert r["test"] == "test_sleepy.py::test_sleep"
        # One value per round (the unit), 2 rounds in each of 4 processes.
        assert len(r["samples"]) == 8 and r["median_unpaired"] == statistics.median(r["samples"])
        assert len(r["rounds"]) >= 8 and {x["process"] for x in r["rounds"]} == {1, 2, 3, 4}
        assert [p["process"] for p in r["processes"]] == [1, 2, 3, 4]
    # Version 3: the table's median of an environment is the baseline's times its ratio.
    base, control = results["baremetal"], results["control"]
    assert base["median"] == base["median_unpaired"]
    assert control["median"] == pytest.approx(base["median"] * control["ratio"])
    assert control["ci"][0] <= control["median"] / base["median"] <= control["ci"][1]
    [claim] = data["claims"]
    assert set(claim) >= {"test", "claim", "env", "baseline", "ratio", "ci", "verdict"}
    assert claim["env"] == "control" and claim["baseline"] == "baremetal" and len(claim["ci"]) == 2
    assert data["seed"] == 7
    assert len(data["tests"][0]["order"]) == 8
    assert data["host"]["label"].startswith("the host")
    assert data["statistics"]["processes"] == 4 and data["statistics"]["confidence"] == 0.95


def test_seed_repeats_the_round_order(pytester):
    write_sleepy(pytester, 1, [])
    orders = []
    for _ in range(2):
        # one call per round: a round's order is then the order of its one pass
        pytester.runpytest_subprocess(*AA, "--virt-calls=1", "--virt-json=o.json")
        orders.append(read_json(pytester, "o.json")["tests"][0]["order"])
    assert orders[0] == orders[1]
    assert any(o != orders[0][0] for o in orders[0])  # both orders occur: interleaved at random


def test_claims_from_ini_and_cli_apply_to_every_marked_test(pytester):
    pytester.makeini("""
        [pytest]
        virt_claims =
            control <= 10 * baremetal
    """)
    pytester.makepyfile("""
        import time, pytest
        @pytest.mark.virt
        def test_a():
            time.sleep(0.005)
        @pytest.mark.virt(claims=["control >= 0.1 * baremetal"])
        def test_b():
            time.sleep(0.005)
    """)
    result = pytester.runpytest_subprocess(*AA, "--virt-claim=control ~= baremetal +- 90%", "--virt-json=o.json")
    assert result.ret == 0
    claims = [(c["test"].split("::")[1], c["claim"]) for c in read_json(pytester, "o.json")["claims"]]
    assert claims == [("test_a", "control <= 10 * baremetal"), ("test_a", "control ~= baremetal +- 90%"),
                      ("test_b", "control >= 0.1 * baremetal"), ("test_b", "control <= 10 * baremetal"),
                      ("test_b", "control ~= baremetal +- 90%")]


def test_malformed_claim_is_a_usage_error_with_the_column(pytester):
    pytester.makepyfile("""
        import pytest
        @pytest.mark.virt(claims=["control <= 1.05 x baremetal"])
        def test_a():
            pass
    """)
    result = pytester.runpytest_subprocess(*AA)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([
        "*test_malformed_claim_is_a_usage_error_with_the_column.py::test_a: invalid claim at column 17:*",
        "*control <= 1.05 x baremetal",
        "*                ^",
    ])
    assert "Traceback" not in result.stderr.str()


def test_claim_with_unknown_environment(pytester):
    pytester.makepyfile("""
        import pytest
        @pytest.mark.virt(claims=["vmm <= 2 * baremetal"])
        def test_a():
            pass
    """)
    result = pytester.runpytest_subprocess(*AA)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    # (a kind absent from the run, such as vm, makes the claim skipped: tests/test_usage_errors.py)
    result.stderr.fnmatch_lines(["*unknown environment 'vmm'; environments of this run: baremetal, control*"])


@pytest.mark.parametrize("args, words", [
    (["--virt-envs=baremetal,podman"], "*unknown environment kind 'podman'*known kinds: baremetal, container, vm*"),
    (["--virt-envs=baremetal,baremetal"], "*named twice*"),
    (["--virt-claim=baremetal <="], "*--virt-claim: invalid claim at column 13*"),
    (["--virt-rounds=0"], "*--virt-rounds: must be at least 1*"),
    (["--virt-cpus=99"], "*not available here*"),
    (["--virt-baseline=nope"], "*--virt-baseline: unknown environment 'nope'*"),
])
def test_bad_options_are_usage_errors(pytester, args, words):
    pytester.makepyfile("def test_a(): pass")
    result = pytester.runpytest_subprocess("--virt-compare", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([words])


def test_failure_inside_the_environment_fails_the_test(pytester):
    pytester.makepyfile("""
        import pytest
        @pytest.mark.virt
        def test_boom():
            value = 41
            assert value == 42
    """)
    result = pytester.runpytest_subprocess(*AA)
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*the test failed in environment*", "*assert 41 == 42*"])


def test_benchmark_fixture_samples_are_compared(pytester):
    pytester.makepyfile("""
        import pytest
        def work():
            return sum(range(1000))
        @pytest.mark.virt(rounds=2)
        def test_bench(benchmark):
            benchmark.pedantic(work, rounds=7, iterations=10)
    """)
    result = pytester.runpytest_subprocess(*AA, "--virt-json=o.json")
    assert result.ret == 0
    data = read_json(pytester, "o.json")
    for r in data["results"]:
        assert r["source"] == "benchmark"
        assert len(r["samples"]) == 2  # one value per round: the median of its 7 samples
        assert len(r["raw_samples"]) == 14  # 2 rounds x 7 pytest-benchmark rounds, kept (under the cap)
        assert all(x["n"] == 7 for x in r["rounds"])


def test_marker_envs_and_bad_marker(pytester):
    pytester.makepyfile("""
        import pytest
        @pytest.mark.virt(envs=["nope"])
        def test_a():
            pass
    """)
    result = pytester.runpytest_subprocess(*AA)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*names unknown environment 'nope'; environments of this run: baremetal, control*"])


BROKEN_INI = """
[pytest]
virt_env_options =
    broken: python=/nonexistent/python3
"""


def test_unavailable_environment_skips_or_errors_when_required(pytester):
    pytester.makeini(BROKEN_INI)
    pytester.makepyfile("""
        import pytest
        @pytest.mark.virt(claims=["broken <= 2 * baremetal"])
        def test_a():
            pass
    """)
    args = ["--virt-compare", "--virt-envs=baremetal,broken=baremetal", "--virt-rounds=2", "-p", "no:cacheprovider"]
    result = pytester.runpytest_subprocess(*args, "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*no environment to compare with: broken: cannot start the worker*"])
    required = pytester.runpytest_subprocess(*args, "--virt-require=broken")
    assert required.ret == 1
    required.stdout.fnmatch_lines(["*required environment(s) could not start (--virt-require)*"])


def test_help_lists_the_options(pytester):
    result = pytester.runpytest_subprocess("--help")
    for opt in ("--virt-compare", "--virt-envs=LIST", "--virt-baseline=NAME", "--virt-claim=CLAIM",
                "--virt-strict", "--virt-json=PATH", "--virt-require=LIST", "--virt-rounds=N"):
        result.stdout.fnmatch_lines([f"*{opt}*"])


def test_no_gate_reports_failed_claims_as_findings(pytester):
    write_sleepy(pytester, 1, ["control >= 1.5 * baremetal"])
    result = pytester.runpytest_subprocess(*AA, "--virt-no-gate")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*findings only: claims do not fail tests*",
                                 "*FAIL*control >= 1.5 * baremetal*"])
    pytester.makeini("[pytest]\nvirt_gate = false\n")
    assert pytester.runpytest_subprocess(*AA).ret == 0


ADAPTIVE = """
import itertools, os, time
import pytest

# control: 20, 40, 30, 26, 34 ms, over and over (median 30 ms); baseline 20 ms.
_cycle = itertools.cycle([0.020, 0.040, 0.030, 0.026, 0.034])

@pytest.mark.virt(claims=["control >= 1.1 * baremetal"], rounds=2)
def test_adaptive():
    time.sleep(next(_cycle) if os.environ["VIRTOVERHEAD_ENV"] == "control" else 0.020)
"""


def test_time_budget_turns_inconclusive_into_conclusive(pytester):
    pytester.makepyfile(test_adaptive=ADAPTIVE)
    args = aa_args("--virt-warmup=0", "--virt-json=o.json", seed=3)
    fixed = pytester.runpytest_subprocess(*args)
    data = read_json(pytester, "o.json")
    assert data["claims"][0]["verdict"] == "inconclusive"
    assert data["tests"][0]["stopped_by"] == "rounds" and data["tests"][0]["rounds"] == 2
    assert fixed.ret == 0
    adaptive = pytester.runpytest_subprocess(*args, "--virt-time-budget=30")
    data = read_json(pytester, "o.json")
    assert data["claims"][0]["verdict"] == "pass"
    assert data["tests"][0]["stopped_by"] == "conclusive" and data["tests"][0]["rounds"] > 2
    adaptive.stdout.fnmatch_lines(["*adaptive sampling*", "*test_adaptive: * rounds, stopped: conclusive*"])
