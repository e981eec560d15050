"""``pytest-virtoverhead compare``: pure comparison of two saved runs, with
hand-made files and hand-computed numbers, then end to end."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_virtoverhead import cli
from pytest_virtoverhead.runcompare import (
    FAIL, INCONCLUSIVE, PASS, RunFileError, bootstrap_ratio_of_ratios_ci, compare_runs, load_run,
    not_worse_claim, parse_tolerance)


def run(samples, claims=(), baseline="baremetal", accel=None):
    """A --virt-json document: samples {(test, env): [...]}, claims [(test, claim, env, verdict, ratio)]."""
    envs = {env for _, env in samples}
    return {
        "version": 1, "seed": 1, "baseline": baseline, "rounds": 3,
        "environments": {e: {"kind": "vm" if e == "vm" else "baremetal", **({"accel": accel} if e == "vm" and accel
                                                                              else {})} for e in envs},
        "results": [{"test": t, "env": e, "samples": s, "median": sorted(s)[len(s) // 2]}
                    for (t, e), s in samples.items()],
        "claims": [{"test": t, "claim": c, "env": e, "baseline": baseline, "ratio": r, "ci": [r, r], "verdict": v}
                   for t, c, e, v, r in claims],
    }


T = "tests/x.py::test_a"


def test_parse_tolerance():
    assert parse_tolerance("5%") == 0.05
    assert parse_tolerance("2.5") == 0.025
    assert parse_tolerance(" 0% ") == 0.0
    for bad in ("-5%", "five", "5%%", ""):
        with pytest.raises(ValueError):
            parse_tolerance(bad)


def test_not_worse_is_a_claim_of_the_grammar():
    claim = not_worse_claim(0.05)
    assert claim.text == "B <= A + 5%" and claim.upper == pytest.approx(1.05) and claim.lower is None


def test_ratio_of_ratios_ci_constant_groups_is_the_point():
    # A: 2 / 1 = 2; B: 3 / 1 = 3; B / A = 1.5 whatever the resample
    lo, hi = bootstrap_ratio_of_ratios_ci([2, 2, 2], [1, 1, 1], [3, 3, 3], [1, 1, 1], seed=1)
    assert lo == pytest.approx(1.5) and hi == pytest.approx(1.5)


def test_ratio_of_ratios_ci_by_hand():
    # Only B's environment varies: a resample's median is 2.0, 2.1 or 2.2, each with probability
    # 7/27, 13/27, 7/27 (>= 2.5% each), so the 95% interval of (median / 1) / 2 is [1.0, 1.1].
    lo, hi = bootstrap_ratio_of_ratios_ci([2, 2, 2], [1, 1, 1], [2.0, 2.1, 2.2], [1, 1, 1], seed=3)
    assert (lo, hi) == (pytest.approx(1.0), pytest.approx(1.1))


def test_ratio_of_ratios_ci_rejects_empty():
    with pytest.raises(ValueError):
        bootstrap_ratio_of_ratios_ci([], [1], [1], [1])


def test_compare_numbers_and_verdicts():
    a = run({(T, "baremetal"): [1, 2, 3], (T, "vm"): [4, 6, 8],            # ratio 6 / 2 = 3
             ("t::b", "baremetal"): [1, 1, 1], ("t::b", "vm"): [2, 2, 2],  # 2
             ("t::c", "baremetal"): [1, 1, 1], ("t::c", "vm"): [2, 2, 2]})
    b = run({(T, "baremetal"): [2, 2, 2], (T, "vm"): [7, 7, 7],            # 3.5: +16.7%
             ("t::b", "baremetal"): [1, 1, 1], ("t::b", "vm"): [2.0, 2.1, 2.2],  # 2.1: +5%, CI [1.0, 1.1]
             ("t::c", "baremetal"): [1, 1, 1], ("t::c", "vm"): [1, 1, 1]})  # 1: -50%
    cmp = compare_runs(a, b, tolerance=0.05)
    rows = {r.test: r for r in cmp.rows}
    assert set(rows) == {T, "t::b", "t::c"}  # the baseline itself is no row
    r = rows[T]
    assert (r.ratio_a, r.ratio_b) == (3.0, 3.5)
    assert r.ratio_of_ratios == pytest.approx(3.5 / 3) and r.change == pytest.approx(1 / 6)
    assert r.ci[0] <= r.ratio_of_ratios * 1.0001 and r.ci[1] >= r.ratio_of_ratios * 0.9999
    rb = rows["t::b"]
    assert rb.ratio_of_ratios == pytest.approx(1.05) and rb.ci == (pytest.approx(1.0), pytest.approx(1.1))
    assert rb.verdict == INCONCLUSIVE and not rb.regression
    assert compare_runs(a, b, tolerance=0.10).rows[1].verdict == PASS  # 1.1 <= 1 + 10%
    rc = rows["t::c"]
    assert rc.ratio_of_ratios == pytest.approx(0.5) and rc.verdict == PASS and rc.better


def test_regression_when_the_whole_interval_is_above_the_tolerance():
    a = run({(T, "baremetal"): [1, 1, 1], (T, "vm"): [2, 2, 2]})
    b = run({(T, "baremetal"): [1, 1, 1], (T, "vm"): [3, 3, 3]})
    cmp = compare_runs(a, b, tolerance=0.05)
    [r] = cmp.rows
    assert r.verdict == FAIL and r.regression and r.ratio_of_ratios == pytest.approx(1.5)
    assert len(cmp.regressions) == 1 and "+50.0%" in cmp.regressions[0]
    assert compare_runs(a, b, tolerance=0.6).regressions == []  # 1.5 <= 1.6


def test_claim_changes():
    s = {(T, "baremetal"): [1, 1, 1], (T, "vm"): [2, 2, 2]}
    a = run(s, [(T, "vm <= 3 * baremetal", "vm", "pass", 2.0), (T, "vm <= 1.5 * baremetal", "vm", "fail", 2.0),
                (T, "vm >= 1 * baremetal", "vm", "pass", 2.0), (T, "gone <= baremetal", "vm", "pass", 1.0)])
    b = run(s, [(T, "vm <= 3 * baremetal", "vm", "fail", 3.2), (T, "vm <= 1.5 * baremetal", "vm", "pass", 1.4),
                (T, "vm >= 1 * baremetal", "vm", "pass", 2.0), (T, "new <= baremetal", "vm", "inconclusive", 1.0)])
    cmp = compare_runs(a, b)
    changed = {c.claim: (c.verdict_a, c.verdict_b, c.regression) for c in cmp.claims}
    assert changed == {"vm <= 3 * baremetal": ("pass", "fail", True),
                       "vm <= 1.5 * baremetal": ("fail", "pass", False),
                       "gone <= baremetal": ("pass", None, False),
                       "new <= baremetal": (None, "inconclusive", False)}
    assert cmp.regressions == [f"{T}: claim 'vm <= 3 * baremetal' passed in A and fails in B"]


def test_only_in_one_run_and_notes():
    a = run({(T, "baremetal"): [1, 1], (T, "vm"): [2, 2], (T, "container"): [1, 1]}, accel="kvm")
    b = run({(T, "baremetal"): [1, 1], (T, "vm"): [2, 2], ("t::new", "baremetal"): [1], ("t::new", "vm"): [1]},
            accel="tcg")
    cmp = compare_runs(a, b)
    assert cmp.only_in_a == [f"{T} [container]"] and cmp.only_in_b == ["t::new [vm]"]
    [r] = cmp.rows
    assert "acceleration changed: kvm -> tcg" in r.note


def test_too_few_samples_is_inconclusive():
    a = run({(T, "baremetal"): [1], (T, "vm"): [2]})
    b = run({(T, "baremetal"): [1], (T, "vm"): [4]})
    [r] = compare_runs(a, b).rows
    assert r.ratio_of_ratios == 2.0 and math.isnan(r.ci[0]) and r.verdict == INCONCLUSIVE


def write(tmp_path, name, data):
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return str(path)


def test_cli_exit_codes_and_output(tmp_path, capsys):
    s = {(T, "baremetal"): [1, 1, 1], (T, "vm"): [2, 2, 2]}
    a = write(tmp_path, "a.json", run(s, [(T, "vm <= 3 * baremetal", "vm", "pass", 2.0)], accel="tcg"))
    same = write(tmp_path, "same.json", run(s, [(T, "vm <= 3 * baremetal", "vm", "pass", 2.0)], accel="tcg"))
    worse = write(tmp_path, "b.json", run({(T, "baremetal"): [1, 1, 1], (T, "vm"): [3.2, 3.2, 3.2]},
                                          [(T, "vm <= 3 * baremetal", "vm", "fail", 3.2)], accel="tcg"))
    assert cli.main(["compare", a, same]) == 0
    out = capsys.readouterr().out
    assert "no regression" in out and "vm [tcg]" in out
    assert cli.main(["compare", a, worse, "--tolerance", "5%", "--json", str(tmp_path / "c.json")]) == 1
    out = capsys.readouterr().out
    assert "+60.0%" in out and "WORSE" in out
    assert "REGRESSION  tests/x.py::test_a: vm <= 3 * baremetal: pass -> fail" in out
    assert "2 regression(s):" in out
    saved = json.loads((tmp_path / "c.json").read_text())
    assert saved["rows"][0]["ratio_of_ratios"] == pytest.approx(1.6) and len(saved["regressions"]) == 2
    assert cli.main(["compare", a, worse, "--tolerance", "100%"]) == 1  # the claim still regressed


def test_cli_bad_input(tmp_path, capsys):
    a = write(tmp_path, "a.json", run({(T, "baremetal"): [1]}))
    bench = write(tmp_path, "bench.json", {"machine_info": {}, "benchmarks": []})
    assert cli.main(["compare", a, bench]) == 2
    assert "pytest-benchmark file" in capsys.readouterr().err
    assert cli.main(["compare", a, str(tmp_path / "missing.json")]) == 2
    (tmp_path / "bad.json").write_text("{")
    assert cli.main(["compare", a, str(tmp_path / "bad.json")]) == 2
    with pytest.raises(RunFileError):
        load_run(write(tmp_path, "v2.json", {"version": 2, "results": []}))
    with pytest.raises(SystemExit):
        cli.main(["compare", a, a, "--tolerance", "lots"])


SLEEPY = """
import os, time
import pytest

@pytest.mark.virt(claims=["control <= 1.5 * baremetal"])
def test_sleep():
    time.sleep({factor} * 0.01 if os.environ["VIRTOVERHEAD_ENV"] == "control" else 0.01)
"""


def test_end_to_end_a_claim_that_newly_fails_exits_1(pytester):
    args = ["--virt-compare", "--virt-envs=baremetal,control=baremetal", "--virt-rounds=5", "--virt-seed=1",
            "-p", "no:cacheprovider"]
    pytester.makepyfile(test_s=SLEEPY.format(factor=1))
    pytester.runpytest_subprocess(*args, "--virt-json=a.json").assert_outcomes(passed=1)
    pytester.makepyfile(test_s=SLEEPY.format(factor=3))
    pytester.runpytest_subprocess(*args, "--virt-json=b.json").assert_outcomes(failed=1)
    script = Path(sys.executable).with_name("pytest-virtoverhead")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "pytest_virtoverhead.cli"]
    proc = subprocess.run([*cmd, "compare", "a.json", "b.json"], cwd=pytester.path, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "control <= 1.5 * baremetal: pass -> fail" in proc.stdout
    assert "WORSE" in proc.stdout
    same = subprocess.run([*cmd, "compare", "a.json", "a.json"], cwd=pytester.path, capture_output=True,
                          text=True, timeout=120)
    assert same.returncode == 0 and "no regression" in same.stdout
