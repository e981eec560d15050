"""``pytest-virtoverhead compare``: comparison of two saved runs (JSON
version 2: per-round records, paired with the baseline, worker processes as
clusters), with hand-made files and hand-computed numbers, then end to end;
also ``report`` of a saved run."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from virthelp import aa_args, read_json

from pytest_virtoverhead.judge import stats
from pytest_virtoverhead.offline import cli
from pytest_virtoverhead.offline.runcompare import (
    FAIL,
    INCONCLUSIVE,
    PASS,
    RunFileError,
    check_run,
    compare_runs,
    load_run,
    not_worse_claim,
    parse_tolerance,
    run_estimate,
)

T = "tests/x.py::test_a"


def run(values, claims=(), baseline="baremetal", accel=None, processes=2, **top):
    """A --virt-json v2 document. values {(test, env): [value per round]};
    round i ran in process slot i % processes. claims [(test, claim, env, verdict, ratio)]."""
    envs = {env for _, env in values}
    results = []
    for (t, e), vals in values.items():
        rounds = [{"round": i, "process": i % processes, "value": v, "disturbed": False, "used": True}
                  for i, v in enumerate(vals)]
        results.append({"test": t, "env": e, "samples": list(vals), "median": sorted(vals)[len(vals) // 2],
                        "source": "call", "rounds": rounds})
    return {
        "version": 2, "seed": 1, "baseline": baseline, "rounds": 3, "aborted": False, "exitstatus": 0,
        "environments": {e: {"kind": "vm" if e == "vm" else "baremetal",
                             **({"accel": accel} if e == "vm" and accel else {})} for e in envs},
        "results": results,
        "claims": [{"test": t, "claim": c, "env": e, "baseline": baseline, "ratio": r, "ci": [r, r], "verdict": v}
                   for t, c, e, v, r in claims],
        **top,
    }


def write(tmp_path, name, data):
    path = tmp_path / name
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return str(path)


def test_parse_tolerance():
    assert parse_tolerance("5%") == 0.05
    assert parse_tolerance("2.5") == 0.025
    assert parse_tolerance(" 0% ") == 0.0
    for bad in ("-5%", "five", "5%%", "", "1e9"):
        with pytest.raises(ValueError):
            parse_tolerance(bad)


def test_not_worse_is_a_claim_of_the_grammar():
    claim = not_worse_claim(0.05)
    assert claim.text == "B <= A + 5%" and claim.upper == pytest.approx(1.05) and claim.lower is None


def test_run_estimate_pairs_rounds_and_clusters_by_process():
    """The run's estimate is the session's: log ratios per round, paired by
    round index (not position), processes as clusters."""
    env = {"rounds": [{"round": 0, "process": 0, "value": 2.0}, {"round": 1, "process": 1, "value": 4.4},
                      {"round": 2, "process": 0, "value": 2.2}, {"round": 3, "process": 1, "value": 4.0},
                      {"round": 9, "process": 1, "value": 99.0}]}  # no baseline round 9: left out
    base = {"rounds": [{"round": 3, "process": 1, "value": 2.0}, {"round": 2, "process": 0, "value": 1.0},
                       {"round": 1, "process": 1, "value": 2.0}, {"round": 0, "process": 0, "value": 1.0},
                       {"round": 4, "process": 0, "value": 1.0, "used": False}]}
    est = run_estimate(env, base)
    d = stats.paired_log_ratios([2.0, 4.4, 2.2, 4.0], [1.0, 2.0, 1.0, 2.0])
    ref = stats.cluster_estimate(d, [0, 1, 0, 1])
    assert est.n == 4 and est.n_clusters == 2
    assert (est.theta, est.lo, est.hi) == (pytest.approx(ref.theta), pytest.approx(ref.lo), pytest.approx(ref.hi))


def test_ratio_of_ratios_is_the_difference_of_the_two_estimates():
    a = run({(T, "baremetal"): [1.0, 1.0, 1.0, 1.0], (T, "vm"): [2.0, 2.1, 1.9, 2.0]})
    b = run({(T, "baremetal"): [1.0, 1.0, 1.0, 1.0], (T, "vm"): [3.0, 3.2, 2.9, 3.1]})
    [row] = compare_runs(a, b).rows
    ea = run_estimate(a["results"][1], a["results"][0])
    eb = run_estimate(b["results"][1], b["results"][0])
    diff = stats.difference(ea, eb)
    assert row.ratio_of_ratios == pytest.approx(diff.ratio) and row.ci == (pytest.approx(diff.ci[0]),
                                                                           pytest.approx(diff.ci[1]))
    assert row.ratio_a == pytest.approx(ea.ratio) and row.ratio_b == pytest.approx(eb.ratio)
    assert row.n_a == row.n_b == 4 and row.processes_a == 2
    assert row.ratio_of_ratios == pytest.approx(1.5, rel=0.03)


def test_ratio_of_ratios_goes_through_the_shared_ratio_estimate(monkeypatch):
    """compare's two ratios are stats.ratio_estimate, the one estimate of a
    ratio (hand-computed: vm/baremetal is 2 in every round of A and 3 in B,
    so the ratio of ratios is 1.5 with a point interval)."""
    calls = []
    shared = stats.ratio_estimate

    def spy(env, base, clusters=None, **kw):
        calls.append((list(env), list(base), list(clusters)))
        return shared(env, base, clusters, **kw)

    monkeypatch.setattr(stats, "ratio_estimate", spy)
    a = run({(T, "baremetal"): [1.0, 2.0, 1.0, 2.0], (T, "vm"): [2.0, 4.0, 2.0, 4.0]})
    b = run({(T, "baremetal"): [1.0, 2.0, 1.0, 2.0], (T, "vm"): [3.0, 6.0, 3.0, 6.0]})
    [row] = compare_runs(a, b).rows
    assert calls == [([2.0, 4.0, 2.0, 4.0], [1.0, 2.0, 1.0, 2.0], [0, 1, 0, 1]),
                     ([3.0, 6.0, 3.0, 6.0], [1.0, 2.0, 1.0, 2.0], [0, 1, 0, 1])]
    assert row.ratio_a == pytest.approx(2.0) and row.ratio_b == pytest.approx(3.0)
    assert row.ratio_of_ratios == pytest.approx(1.5) and row.ci == (pytest.approx(1.5), pytest.approx(1.5))


def test_ratio_estimate_of_no_rounds_is_nan():
    est = stats.ratio_estimate([], [])
    assert est.n == 0 and math.isnan(est.ratio) and all(math.isnan(x) for x in est.ci)


def test_compare_verdicts():
    base = [1.0] * 6
    a = run({(T, "baremetal"): base, (T, "vm"): [2.0, 2.02, 1.98, 2.0, 2.01, 1.99],      # 2
             ("t::b", "baremetal"): base, ("t::b", "vm"): [2.0] * 6,                       # 2
             ("t::c", "baremetal"): base, ("t::c", "vm"): [2.0, 2.02, 1.98, 2.0, 2.01, 1.99]})
    b = run({(T, "baremetal"): base, (T, "vm"): [2.4, 2.42, 2.38, 2.4, 2.41, 2.39],      # +20%: worse
             ("t::b", "baremetal"): base, ("t::b", "vm"): [1.9, 2.3, 2.0, 2.2, 1.8, 2.4],  # +5%, wide: open
             ("t::c", "baremetal"): base, ("t::c", "vm"): [1.0, 1.01, 0.99, 1.0, 1.0, 1.0]})  # -50%: better
    cmp = compare_runs(a, b, tolerance=0.05)
    rows = {r.test: r for r in cmp.rows}
    assert set(rows) == {T, "t::b", "t::c"}  # the baseline itself is no row
    assert rows[T].verdict == FAIL and rows[T].regression and rows[T].flagged
    assert rows[T].change == pytest.approx(0.2, abs=0.01)
    assert rows["t::b"].verdict == INCONCLUSIVE and not rows["t::b"].flagged
    assert rows["t::c"].verdict == PASS and rows["t::c"].better
    assert len(cmp.regressions) == 1 and "+20.0%" in cmp.regressions[0]
    assert compare_runs(a, b, tolerance=0.5).regressions == []  # 1.2 <= 1.5


def test_better_needs_more_than_the_tolerance():
    """A small, clear improvement inside the tolerance is not flagged: the
    tolerance is also the effect-size floor (run-to-run noise)."""
    base = [1.0] * 6
    a = run({(T, "baremetal"): base, (T, "vm"): [2.0, 2.001, 1.999, 2.0, 2.0, 2.0]})
    b = run({(T, "baremetal"): base, (T, "vm"): [1.94, 1.941, 1.939, 1.94, 1.94, 1.94]})  # -3%, CI tight
    [r] = compare_runs(a, b, tolerance=0.05).rows
    assert r.ci[1] < 1 and r.verdict == PASS and not r.better and not r.flagged
    [r] = compare_runs(a, b, tolerance=0.01).rows
    assert r.better


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


def test_missing_tests_and_environments_are_listed_with_why():
    a = run({(T, "baremetal"): [1, 1], (T, "vm"): [2, 2], (T, "container"): [1, 1],
             ("t::gone", "baremetal"): [1, 1], ("t::gone", "vm"): [2, 2]}, accel="kvm")
    b = run({(T, "baremetal"): [1, 1], (T, "vm"): [2, 2], ("t::new", "baremetal"): [1, 1], ("t::new", "vm"): [1, 1]},
            accel="tcg")
    b["results"].append({"test": T, "env": "container", "samples": [], "median": None,
                         "unavailable": "no Docker daemon at unix:///var/run/docker.sock\nmore"})
    cmp = compare_runs(a, b)
    assert cmp.only_in_a == [f"{T} [container] (B: unavailable: no Docker daemon at unix:///var/run/docker.sock)",
                             "t::gone [vm] (B: test not run)"]
    assert cmp.only_in_b == ["t::new [vm] (A: test not run)"]
    [r] = cmp.rows
    assert "acceleration changed: kvm -> tcg" in r.note


def test_renamed_environment_is_listed():
    a = run({(T, "baremetal"): [1, 1], (T, "control"): [1, 1]})
    b = run({(T, "baremetal"): [1, 1], (T, "ctrl"): [1, 1]})
    cmp = compare_runs(a, b)
    assert cmp.rows == [] and not cmp.in_common
    assert cmp.only_in_a == [f"{T} [control] (B: environment not in this run)"]
    assert cmp.only_in_b == [f"{T} [ctrl] (A: environment not in this run)"]


def test_one_round_is_inconclusive():
    a = run({(T, "baremetal"): [1], (T, "vm"): [2]})
    b = run({(T, "baremetal"): [1], (T, "vm"): [4]})
    [r] = compare_runs(a, b).rows
    assert r.ratio_of_ratios == pytest.approx(2.0) and math.isnan(r.ci[0]) and r.verdict == INCONCLUSIVE
    assert "too few rounds" in r.note


def test_cli_exit_codes_and_output(tmp_path, capsys):
    s = {(T, "baremetal"): [1.0, 1.0, 1.0, 1.0], (T, "vm"): [2.0, 2.02, 1.98, 2.0]}
    a = write(tmp_path, "a.json", run(s, [(T, "vm <= 3 * baremetal", "vm", "pass", 2.0)], accel="tcg"))
    same = write(tmp_path, "same.json", run(s, [(T, "vm <= 3 * baremetal", "vm", "pass", 2.0)], accel="tcg"))
    worse = write(tmp_path, "b.json", run({(T, "baremetal"): [1.0] * 4, (T, "vm"): [3.2, 3.22, 3.18, 3.2]},
                                          [(T, "vm <= 3 * baremetal", "vm", "fail", 3.2)], accel="tcg"))
    assert cli.main(["compare", a, same]) == 0
    out = capsys.readouterr().out
    assert "no regression" in out and "vm [tcg]" in out and "worker processes as clusters" in out
    assert cli.main(["compare", a, worse, "--tolerance", "5%", "--json", str(tmp_path / "c.json")]) == 1
    out = capsys.readouterr().out
    assert "+60.0%" in out and "WORSE" in out
    assert "REGRESSION  tests/x.py::test_a: vm <= 3 * baremetal: pass -> fail" in out
    assert "2 regression(s):" in out
    saved = json.loads((tmp_path / "c.json").read_text())
    assert saved["rows"][0]["ratio_of_ratios"] == pytest.approx(1.6, rel=0.01) and len(saved["regressions"]) == 2
    assert cli.main(["compare", a, worse, "--tolerance", "100%"]) == 1  # the claim still regressed
    assert cli.main(["compare", a, same, "--confidence", "99%"]) == 0
    assert "99% CI" in capsys.readouterr().out


def test_cli_subset_lists_what_is_missing_and_nothing_in_common_is_exit_2(tmp_path, capsys):
    """Point 6: B ran a subset, renamed an environment, or had one unavailable."""
    full = {(T, "baremetal"): [1.0] * 4, (T, "vm"): [2.0] * 4, ("t::b", "baremetal"): [1.0] * 4,
            ("t::b", "vm"): [2.0] * 4}
    a = write(tmp_path, "a.json", run(full))
    subset = write(tmp_path, "sub.json", run({k: v for k, v in full.items() if k[0] == T}))
    assert cli.main(["compare", a, subset]) == 0
    out = capsys.readouterr().out
    assert "measured only in A (1):" in out and "t::b [vm] (B: test not run)" in out
    assert "no regression among what both runs measured (1 row(s) measured in only one run" in out
    renamed = write(tmp_path, "ren.json", run({(t, "vm2" if e == "vm" else e): v for (t, e), v in full.items()}))
    # Before: exit 0, "no test and environment was measured in both runs ... no regression".
    assert cli.main(["compare", a, renamed]) == 2
    out = capsys.readouterr().out
    assert "nothing in common" in out and "(exit status 2)" in out and "no regression" not in out
    assert "tests/x.py::test_a [vm2] (A: environment not in this run)" in out


def test_cli_refuses_an_aborted_run(tmp_path, capsys):
    s = {(T, "baremetal"): [1.0] * 3, (T, "vm"): [2.0] * 3}
    a = write(tmp_path, "a.json", run(s))
    b = write(tmp_path, "b.json", run(s, aborted=True, exitstatus=2))
    assert cli.main(["compare", a, b]) == 2
    assert ('b.json: this run did not finish ("aborted": true, exit status 2: interrupted or a collection '
            'error): its results are partial') in capsys.readouterr().err


@pytest.mark.parametrize("content, words", [
    (b"\xff\xfe{}", "not UTF-8 text (byte 0xff at offset 0): not a --virt-json file"),
    ('{"version": 2, "results": null}', "'results' must be a list, got NoneType"),
    ('{"version": 2, "results": [{"test": "t", "env": "vm", "samples": ["fast"], "rounds": []}]}',
     "results[0] (t [vm]): 'samples' holds 'fast': expected non-negative numbers (seconds)"),
    ('{"version": 2, "results": [{"test": "t", "env": "vm", "samples": [1.0], '
     '"rounds": [{"round": "0", "process": 0, "value": 1.0}]}]}', "rounds[0].round must be a whole number"),
    ('{"version": 2, "results": [{"test": "t", "env": "vm", "samples": [1.0], '
     '"rounds": [{"round": 0, "process": 0, "value": "1.0"}]}]}', "rounds[0].value must be a non-negative"),
    ('{"version": 2, "results": [7]}', "results[0]: expected an object, got int"),
    ('{"version": 2, "results": [], "claims": [1]}', "'claims' must be a list of objects"),
    ('{"version": 1, "results": []}', "a version-1 --virt-json file (written before per-round records existed)"),
    ('{"version": 9, "results": []}', "unsupported --virt-json version 9"),
    ('{"machine_info": {}, "benchmarks": []}', "pytest-benchmark file"),
    ("{", "not JSON"),
    ("[" * 100000, "not JSON"),
])
def test_cli_bad_input_is_exit_2_with_a_message(tmp_path, capsys, content, words):
    """Point 8: bad input is exit 2 (before: a traceback and exit 1, the
    regression status) for compare and report alike."""
    good = write(tmp_path, "a.json", run({(T, "baremetal"): [1.0, 1.0], (T, "vm"): [2.0, 2.0]}))
    bad = tmp_path / "bad.json"
    bad.write_bytes(content if isinstance(content, bytes) else content.encode())
    assert cli.main(["compare", good, str(bad)]) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err
    assert cli.main(["report", str(bad), "-o", str(tmp_path / "r.html")]) == 2
    assert words in capsys.readouterr().err


def test_cli_bad_usage_is_exit_2(tmp_path, capsys):
    a = write(tmp_path, "a.json", run({(T, "baremetal"): [1.0, 1.0], (T, "vm"): [2.0, 2.0]}))
    assert cli.main(["compare", a, str(tmp_path / "missing.json")]) == 2
    assert cli.main(["compare", a, str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err
    assert cli.main(["compare", a, a, "--tolerance", "lots"]) == 2
    assert "tolerance must be a percentage" in capsys.readouterr().err
    assert cli.main(["compare", a, a, "--confidence", "2"]) == 2
    with pytest.raises(SystemExit) as info:  # argparse: no bootstrap any more
        cli.main(["compare", a, a, "--resamples=0"])
    assert info.value.code == 2
    assert cli.main(["report", a, "-o", str(tmp_path)]) == 2
    assert "-o/--output: cannot write" in capsys.readouterr().err


def test_cli_json_to_a_directory_does_not_hide_a_regression(tmp_path, capsys):
    a = write(tmp_path, "a.json", run({(T, "baremetal"): [1.0] * 3, (T, "vm"): [2.0, 2.01, 1.99]}))
    b = write(tmp_path, "b.json", run({(T, "baremetal"): [1.0] * 3, (T, "vm"): [4.0, 4.01, 3.99]}))
    (tmp_path / "out").mkdir()
    # Checked before comparing: a usage error.
    assert cli.main(["compare", a, b, "--json", str(tmp_path / "out")]) == 2
    assert "--json: cannot write" in capsys.readouterr().err
    # Failing only at the end (the check passed): the regression's 1 stays.
    import pytest_virtoverhead.offline.cli as mod

    real = mod._check_output
    try:
        mod._check_output = lambda path, option: None
        assert cli.main(["compare", a, b, "--json", str(tmp_path / "out")]) == 1
    finally:
        mod._check_output = real
    assert "could not write" in capsys.readouterr().err


def test_check_run_accepts_the_plugins_own_file_shape():
    doc = run({(T, "baremetal"): [1.0, 1.0], (T, "vm"): [2.0, 2.0]})
    doc["results"].append({"test": T, "env": "container", "samples": [], "median": None, "unavailable": "x"})
    check_run(doc)


SLEEPY = """
import os, time
import pytest

@pytest.mark.virt(claims=["control <= 1.5 * baremetal"])
def test_sleep():
    time.sleep({factor} * 0.01 if os.environ["VIRTOVERHEAD_ENV"] == "control" else 0.01)
"""


def test_end_to_end_a_claim_that_newly_fails_exits_1(pytester):
    args = aa_args(rounds=4, seed=1)
    pytester.makepyfile(test_s=SLEEPY.format(factor=1))
    pytester.runpytest_subprocess(*args, "--virt-json=a.json").assert_outcomes(passed=1)
    pytester.makepyfile(test_s=SLEEPY.format(factor=3))
    pytester.runpytest_subprocess(*args, "--virt-json=b.json").assert_outcomes(failed=1)
    script = Path(sys.executable).with_name("pytest-virtoverhead")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "pytest_virtoverhead.offline.cli"]
    proc = subprocess.run([*cmd, "compare", "a.json", "b.json"], cwd=pytester.path, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "control <= 1.5 * baremetal: pass -> fail" in proc.stdout
    assert "WORSE" in proc.stdout
    same = subprocess.run([*cmd, "compare", "a.json", "a.json"], cwd=pytester.path, capture_output=True,
                          text=True, timeout=120)
    assert same.returncode == 0 and "no regression" in same.stdout


def test_end_to_end_an_interrupted_run_is_refused(pytester):
    """A run stopped by Ctrl-C after measuring writes its JSON marked
    aborted; compare refuses it (exit 2)."""
    pytester.makepyfile(test_s="""
        import pytest
        @pytest.mark.virt
        def test_a():
            pass
        def test_stop():
            raise KeyboardInterrupt
    """)
    args = aa_args(rounds=2)
    result = pytester.runpytest_subprocess(*args, "--virt-json=b.json")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(['*results written to b.json (the run did not finish: marked "aborted"*'])
    data = read_json(pytester, "b.json")
    assert data["aborted"] is True and data["exitstatus"] == 2
    with pytest.raises(RunFileError, match="did not finish"):
        load_run(str(pytester.path / "b.json"))


def test_compare_shows_an_absolute_claims_estimates_in_seconds(tmp_path, capsys):
    s = {(T, "baremetal"): [1.0] * 3, (T, "vm"): [2.0] * 3}
    a, b = run(s, claims=[(T, "vm <= 50 ms", "vm", "pass", 0.0412)]), \
        run(s, claims=[(T, "vm <= 50 ms", "vm", "fail", 0.0613)])
    for doc in (a, b):
        doc["claims"][0].update(unit="s", kind="absolute", baseline=None)
    cli.main(["compare", write(tmp_path, "a.json", a), write(tmp_path, "b.json", b)])
    out = capsys.readouterr().out
    assert "vm <= 50 ms: pass -> fail  (estimate 41.2 ms -> 61.3 ms)" in out, out


def test_report_draws_an_aborted_run_and_says_it_is_partial(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    doc = run({(T, "baremetal"): [1.0] * 3, (T, "vm"): [2.0] * 3}, aborted=True, exitstatus=2)
    out_path = tmp_path / "r.html"
    assert cli.main(["report", write(tmp_path, "b.json", doc), "-o", str(out_path)]) == 0
    assert "the run did not finish: its results are partial" in capsys.readouterr().out
    assert "interrupted" in out_path.read_text()
