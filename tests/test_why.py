"""Resource counters per call, the "why" line, and a table whose
median and rate agree with the ratio. Hand-computed numbers throughout."""

from __future__ import annotations

import math

import pytest
from virthelp import aa_args, read_json

from pytest_virtoverhead.guest import rusage
from pytest_virtoverhead.judge import stats, why
from pytest_virtoverhead.judge.claims import parse_claim
from pytest_virtoverhead.judge.verdict import PASS
from pytest_virtoverhead.results import ClaimResult, ItemResult, RoundRecord
from pytest_virtoverhead.results.build import record_of

# -- the worker side ---------------------------------------------------------


def test_call_counters_sum_over_calls_and_divide_by_them(monkeypatch):
    readings = iter([
        {"user_seconds": 1.0, "system_seconds": 2.0, "minor_faults": 10.0},   # call 1 starts
        {"user_seconds": 1.5, "system_seconds": 2.1, "minor_faults": 30.0},   # call 1 ends
        {"user_seconds": 3.0, "system_seconds": 3.0, "minor_faults": 100.0},  # call 2 starts
        {"user_seconds": 3.1, "system_seconds": 3.5, "minor_faults": 140.0},  # call 2 ends
    ])
    monkeypatch.setattr(rusage, "snapshot", lambda: next(readings))
    c = rusage.CallCounters()
    assert c.per_call() is None
    for _ in range(2):
        c.start()
        c.stop()
    c.stop()  # a stop without a start counts nothing
    out = c.per_call()
    assert c.calls == 2
    # (0.5 + 0.1) / 2, (0.1 + 0.5) / 2, (20 + 40) / 2
    assert out["user_seconds"] == pytest.approx(0.3)
    assert out["system_seconds"] == pytest.approx(0.3)
    assert out["minor_faults"] == pytest.approx(30.0)
    # Counters the snapshots lacked (no /proc/self/io) are None, not 0.
    assert out["read_bytes"] is None and out["write_bytes"] is None
    assert set(rusage.KEYS) <= set(out)


def test_read_io_parses_the_proc_file(tmp_path):
    f = tmp_path / "io"
    f.write_text("rchar: 4096\nwchar: 12\nsyscr: 3\nsyscw: 1\nread_bytes: 8192\n"
                 "write_bytes: 0\ncancelled_write_bytes: 0\n")
    assert rusage.read_io(str(f)) == {"read_chars": 4096, "write_chars": 12, "read_bytes": 8192, "write_bytes": 0,
                                      "_self": len(f.read_text())}
    assert rusage.read_io(str(tmp_path / "missing")) is None


def test_delta_leaves_out_its_own_read_of_proc_self_io():
    before = {"read_chars": 1000.0, "_self": 110.0, "user_seconds": 1.0}
    after = {"read_chars": 1110.0, "_self": 110.0, "user_seconds": 1.5}
    assert rusage.delta(before, after) == {"read_chars": 0.0, "user_seconds": 0.5}


def test_an_empty_call_reads_nothing():
    c = rusage.CallCounters()
    c.start()
    c.stop()
    out = c.per_call()
    if out["read_chars"] is not None:  # where /proc/self/io is readable
        assert out["read_chars"] == 0


def test_snapshot_sees_system_time_and_faults():
    import mmap
    import os

    before = rusage.snapshot()
    for _ in range(20000):
        os.getppid()
    m = mmap.mmap(-1, 4 << 20)
    for i in range(0, 4 << 20, 4096):
        m[i] = 1
    m.close()
    d = rusage.delta(before, rusage.snapshot())
    assert d["minor_faults"] >= 1024 * 0.9  # one fault per page touched (4 MiB / 4 KiB)
    assert d["user_seconds"] + d["system_seconds"] > 0


# -- summaries ---------------------------------------------------------------


def test_mean_median_and_paired_differences():
    r1 = why.mean_counters([{"system_seconds": 1e-6, "minor_faults": 4}, {"system_seconds": 3e-6, "minor_faults": 6}])
    assert r1["system_seconds"] == pytest.approx(2e-6) and r1["minor_faults"] == 5
    assert r1["read_bytes"] is None
    rounds = [{"minor_faults": 5.0}, {"minor_faults": 1.0}, {"minor_faults": 9.0}, {"minor_faults": 7.0}]
    assert why.median_counters(rounds)["minor_faults"] == 6.0  # (5 + 7) / 2
    env = [{"minor_faults": 12.0}, {"minor_faults": 10.0}, {"minor_faults": 30.0}]
    base = [{"minor_faults": 10.0}, {"minor_faults": 10.0}, {"minor_faults": 10.0}]
    assert why.paired_differences(env, base)["minor_faults"] == 2.0  # median of 2, 0, 20
    assert why.relative({"minor_faults": 12.0}, {"minor_faults": 8.0})["minor_faults"] == 1.5
    assert why.relative({"minor_faults": 12.0}, {"minor_faults": 0.0})["minor_faults"] is None


def test_time_and_count_texts():
    assert why.time_text(0.33e-6) == "+0.33 us"
    assert why.time_text(-1.25e-3) == "-1.25 ms"
    assert why.time_text(2.0) == "+2 s"
    assert why.time_text(5e-9) == "+5 ns"
    assert why.count_text(25600, "minor_faults") == "25.6 k"
    assert why.count_text(4096, "read_bytes") == "4 KiB"
    assert why.count_text(0.02, "involuntary_switches") == "0.02"


# -- the "why" line ----------------------------------------------------------

BASE = {"user_seconds": 2.0e-6, "system_seconds": 1.0e-6, "minor_faults": 0.0, "involuntary_switches": 0.0}
ENV = {"user_seconds": 2.01e-6, "system_seconds": 1.33e-6, "minor_faults": 0.0, "involuntary_switches": 0.0}
DIFF = {"user_seconds": 0.01e-6, "system_seconds": 0.33e-6}


def test_why_line_gives_the_shares_of_a_resolved_difference():
    # time +0.35 us; CPU +0.34 us = 97%; system +0.33 us = 94.3%; user
    # +0.01 us = 2.9%; the rest +0.01 us (10 ns) = 2.9%.
    line = why.why_line(0.35e-6, DIFF, ENV, BASE, "container", "baremetal")
    assert line == ("why (measured per call, container vs baremetal): time +0.35 us; "
                    "CPU time +0.34 us: 97% of the difference (system time +0.33 us: 94% of the difference, "
                    "user time +0.01 us: 3% of the difference); "
                    "outside the process's CPU time +10 ns: 3% of the difference")  # 9.99e-9 s in floating point


def test_why_line_without_a_resolved_difference_gives_no_shares():
    line = why.why_line(0.35e-6, DIFF, ENV, BASE, "control", "baremetal", resolved=False)
    assert line == ("why (measured per call, control vs baremetal): time +0.35 us (the interval holds no "
                    "difference); CPU time +0.34 us (system time +0.33 us, user time +0.01 us)")


def test_why_line_shows_counters_with_both_sides():
    env = {**ENV, "minor_faults": 2048.0, "involuntary_switches": 0.0, "read_bytes": 0.0}
    base = {**BASE, "minor_faults": 1024.0, "involuntary_switches": 0.1, "read_bytes": 0.0}
    line = why.why_line(0.35e-6, DIFF, env, base, "vm", "baremetal")
    # Minor faults reach the floor (0.5 per call); switches and bytes do not.
    assert line.endswith("; minor faults 2.05 k vs 1.02 k")
    assert why.why_line(1e-6, None, env, base, "vm", "baremetal") is None


# -- the table agrees with the ratio -----------------------------------------


def mixed_modes() -> ItemResult:
    """Five processes, one round each: the baseline's rounds 100, 100, 200,
    200, 200 and the container's 150, 150, 160, 160, 160. The plain medians
    say 160 / 200 = 0.8; the paired ratios are 1.5, 1.5, 0.8, 0.8, 0.8,
    whose 20% trimmed geometric mean (one dropped from each end) is
    (0.8 * 0.8 * 1.5) ** (1/3) = 0.96 ** (1/3) = 0.98648."""
    res = ItemResult.from_samples("t.py::a", ["baremetal", "container"], "baremetal",
                                  {"baremetal": [100, 100, 200, 200, 200], "container": [150, 150, 160, 160, 160]},
                                  processes=5)
    a, b, slots = res.paired("container", "baremetal")
    est = stats.ratio_estimate(a, b, slots)
    res.ratios["container"] = (est.ratio, est.ci)
    res.estimates["container"] = est
    return res


def test_table_median_is_the_baselines_median_times_the_ratio():
    res = mixed_modes()
    ratio, (lo, hi) = res.ratios["container"]
    assert ratio == pytest.approx(0.96 ** (1 / 3))
    assert res.median_unpaired("container") == 160
    assert res.table_median("baremetal") == 200
    assert res.table_median("container") == pytest.approx(200 * 0.96 ** (1 / 3))  # 197.30
    # The unpaired medians' ratio says "20% faster"; the table's is the ratio's.
    assert lo <= res.table_median("container") / res.table_median("baremetal") <= hi


def test_table_rate_never_points_against_the_ratio():
    res = mixed_modes()
    for env in res.envs:
        res.work[env] = {"amount": 1000, "unit": "ops"}
        res.source[env] = "call"
    # Unpaired: 1000/160 = 6.25 ops/s against 1000/200 = 5: "faster", while
    # the ratio (0.986) says the same. Paired: 5 / 0.98648 = 5.0685.
    assert res.rate("container") == (pytest.approx(6.25), "ops/s wall")
    assert res.table_rate("container") == (pytest.approx(5 / 0.96 ** (1 / 3)), "ops/s wall")
    # A workload's own rate: the baseline's over the ratio, too.
    res.own_rates = {"baremetal": [10.0, 12.0, 11.0], "container": [9.0]}
    assert res.table_rate("container") == (pytest.approx(11.0 / 0.96 ** (1 / 3)), "ops/s")
    assert res.table_rate("baremetal") == (11.0, "ops/s")


def test_the_json_keeps_the_unpaired_median_and_the_resources():
    res = mixed_modes()
    # Per-call counters of two rounds; the baseline's from the container's blocks.
    for rec, (cs, bs) in zip(res.round_log[:2], [(3e-6, 1e-6), (5e-6, 2e-6)]):
        rec.resources = {"container": [{"system_seconds": cs, "user_seconds": 1e-6}],
                         "baremetal": [{"system_seconds": bs, "user_seconds": 1e-6}]}
        rec.paired_resources = {"container": [{"system_seconds": bs, "user_seconds": 1e-6}]}
    res.claims = [ClaimResult("t.py::a", parse_claim("container <= 2 * baremetal"), *res.ratios["container"], PASS)]
    rec = record_of(res)
    [base, cont] = [e.to_json() for e in rec.envs]
    assert cont["median"] == pytest.approx(197.297, abs=1e-3) and cont["median_unpaired"] == 160
    assert base["median"] == base["median_unpaired"] == 200
    assert cont["resources"]["system_seconds"] == pytest.approx(4e-6)   # median of 3 and 5 us
    vs = cont["resources_vs_baseline"]
    assert vs["baseline"]["system_seconds"] == pytest.approx(1.5e-6)    # median of 1 and 2 us
    assert vs["difference"]["system_seconds"] == pytest.approx(2.5e-6)  # median of 2 and 3 us
    assert vs["ratio"]["system_seconds"] == pytest.approx(4 / 1.5)
    assert vs["rounds"] == 2
    assert "resources_vs_baseline" not in base
    assert rec.claims[0].to_json()["why"].startswith("why (measured per call, container vs baremetal)")


def test_round_record_keeps_the_baselines_counters_by_block():
    rec = RoundRecord(index=0, slot=1, order=[])
    rec.add_reply("container", "container", "baremetal", {"resources": {"minor_faults": 2}})
    rec.add_reply("baremetal", "container", "baremetal", {"resources": {"minor_faults": 1}})
    rec.add_reply("baremetal", "vm", "baremetal", {"resources": {"minor_faults": 3}})
    rec.add_reply("c2", ("c2", "container"), "baremetal", {"resources": {"minor_faults": 9}})
    rec.add_reply("vm", "vm", "baremetal", {"resources": None})
    assert rec.resources == {"container": [{"minor_faults": 2}],
                             "baremetal": [{"minor_faults": 1}, {"minor_faults": 3}]}
    assert rec.paired_resources == {"container": [{"minor_faults": 1}], "vm": [{"minor_faults": 3}]}
    assert math.isnan(why._median([]))


def test_no_why_line_for_a_benchmark_fixture_test():
    res = mixed_modes()
    for rec in res.round_log:
        one, three = {"system_seconds": 1e-6, "user_seconds": 0.0}, {"system_seconds": 3e-6, "user_seconds": 0.0}
        rec.resources = {"container": [three], "baremetal": [one]}
        rec.paired_resources = {"container": [one]}
    assert res.why("container") is not None
    res.source = {"baremetal": "benchmark", "container": "benchmark"}
    assert res.why("container") is None
    [_, cont] = [e.to_json() for e in record_of(res).envs]
    assert cont["resources_per"].startswith("test call (the whole pytest-benchmark run")


def test_ratio_panels_zoom_each_environment():
    """The HTML plot: a container's +-3% interval gets a panel of its own
    scale beside a TCG VM's 13x (it was a pixel wide on a shared axis)."""
    pytest.importorskip("matplotlib")
    from pytest_virtoverhead.render import htmlfigures

    test = {"envs": ["baremetal", "container", "vm"], "claims": [
                {"env": "container", "verdict": "inconclusive", "bounds": [0.97, 1.03]},
                {"env": "vm", "verdict": "fail", "bounds": [None, 5]}],
            "results": {"baremetal": {"samples": [0.1, 0.1]},
                        "container": {"samples": [0.1, 0.1], "ratio": 1.012, "ci": [0.985, 1.04]},
                        "vm": {"samples": [1.3, 1.3], "ratio": 13.1, "ci": [12.5, 13.8]}}}
    fig = htmlfigures.new_figure(6, 3)
    limits = {}
    for env in ("container", "vm"):
        ax = fig.add_subplot()
        htmlfigures._ratio_panel(ax, env, test, "baremetal", env)
        limits[env] = ax.get_xlim()
    lo, hi = limits["container"]
    # 0.97 .. 1.04 plus 15% padding each side: the interval fills most of the panel.
    assert lo == pytest.approx(0.97 - 0.0105) and hi == pytest.approx(1.04 + 0.0105)
    assert limits["vm"][0] < 1.0 and limits["vm"][1] > 13.8
    assert htmlfigures.figure_png(test, "baremetal", {}).startswith(b"\x89PNG")


def test_run_document_reads_the_new_keys():
    from pytest_virtoverhead.results import EnvEntry

    e = EnvEntry.from_json({"test": "t", "env": "c", "samples": [1.0], "median": 2.0, "median_unpaired": 1.0,
                            "resources": {"minor_faults": 3, "read_bytes": None}})
    assert e.median == 2.0 and e.median_unpaired == 1.0
    assert e.resources == {"minor_faults": 3.0, "read_bytes": None}
    old = EnvEntry.from_json({"test": "t", "env": "c", "samples": [1.0], "median": 1.0})
    assert old.median_unpaired == 1.0 and old.resources is None


# -- end to end (pytester, baremetal against control=baremetal) ---------------
#
# The resource counters reach the JSON, the "why" line reaches the terminal,
# Markdown and HTML, and the table's median agrees with the ratio.

SUITE = '''
import mmap
import os

import pytest

PAGES = 2048  # 8 MiB of 4 KiB pages

@pytest.mark.virt(claims=["control <= 10 * baremetal"])
def test_syscalls():
    for _ in range(30000):
        os.getppid()

@pytest.mark.virt(claims=["control <= 10 * baremetal"])
def test_pages():
    m = mmap.mmap(-1, PAGES * 4096)
    for i in range(0, PAGES * 4096, 4096):
        m[i] = 1
    m.close()
'''

KEYS = {"user_seconds", "system_seconds", "voluntary_switches", "involuntary_switches",
        "minor_faults", "major_faults", "read_bytes", "write_bytes"}


def run(pytester, *extra: str) -> tuple[pytest.RunResult, dict]:
    pytester.makepyfile(test_res=SUITE)
    result = pytester.runpytest_subprocess(*aa_args("--virt-json=out.json", "--virt-markdown=out.md", *extra,
                                                    rounds=4, seed=3))
    return result, read_json(pytester, "out.json")


def check_document(data: dict, env: str) -> None:
    assert data["version"] == 3
    entries = {(r["test"].split("::")[-1], r["env"]): r for r in data["results"]}
    for name in ("baremetal", env):
        sys_entry, page_entry = entries["test_syscalls", name], entries["test_pages", name]
        assert KEYS <= set(sys_entry["resources"])
        # 30,000 getppid calls: system time in every environment.
        assert sys_entry["resources"]["system_seconds"] > 0
        # 2,048 pages touched: a minor fault each (a few more for the mapping).
        assert page_entry["resources"]["minor_faults"] >= 2048 * 0.95
        assert page_entry["median_unpaired"] > 0
    vs = entries["test_pages", env]["resources_vs_baseline"]
    assert vs["baseline"]["minor_faults"] >= 2048 * 0.95 and "minor_faults" in vs["difference"]
    base_median = {t: entries[t, "baremetal"]["median"] for t in ("test_syscalls", "test_pages")}
    for t in base_median:
        entry = entries[t, env]
        lo, hi = entry["ci"]
        assert lo <= entry["median"] / base_median[t] <= hi
    for claim in data["claims"]:
        assert claim["verdict"] == "pass"
        assert claim["why"].startswith(f"why (measured per call, {env} vs baremetal): time ")
    page_why = next(c["why"] for c in data["claims"] if c["test"].endswith("test_pages"))
    assert "minor faults 2" in page_why and "CPU time" in page_why


def test_resources_and_why_against_a_control(pytester):
    result, data = run(pytester)
    result.assert_outcomes(passed=2)
    check_document(data, "control")
    result.stdout.fnmatch_lines(["*pass*test_res.py::test_pages: control <= 10 * baremetal*",
                                 "*why (measured per call, control vs baremetal): time *minor faults 2*"])
    md = (pytester.path / "out.md").read_text()
    assert "Why, from the resource counters" in md and "minor faults 2" in md


def test_why_in_the_html_report(pytester):
    pytest.importorskip("matplotlib")
    result, data = run(pytester, "--virt-report=out.html")
    result.assert_outcomes(passed=2)
    html = (pytester.path / "out.html").read_text()
    assert "why (measured per call, control vs baremetal)" in html
