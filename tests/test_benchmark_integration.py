"""pytest-benchmark integration: the ``benchmark`` fixture (and ``pedantic``)
inside environments, and compared tests as pytest-benchmark entries in
``--benchmark-json`` / ``--benchmark-autosave`` / ``--benchmark-compare``."""

import json
import math
import subprocess
import sys
from types import SimpleNamespace

import pytest
from virthelp import aa_args, read_json

from pytest_virtoverhead.guest.itemrunner import BENCHMARK_HOST_ONLY, host_only_benchmark_options
from pytest_virtoverhead.judge.claims import parse_claim
from pytest_virtoverhead.render.benchjson import entry_names, extra_info, make_entries
from pytest_virtoverhead.results import ClaimResult, ItemResult, record_of

AA = aa_args(rounds=3, seed=3)

TESTS = """
import os, time
import pytest

def pause():
    time.sleep(0.004 if os.environ["VIRTOVERHEAD_ENV"] == "control" else 0.002)

@pytest.mark.virt(claims=["control <= 5 * baremetal"])
def test_pedantic(benchmark):
    benchmark.pedantic(pause, rounds=4, iterations=2)

@pytest.mark.virt()
def test_call(benchmark):
    benchmark(pause)

@pytest.mark.virt()
def test_plain():
    pause()
"""


# -- unit --------------------------------------------------------------------


def test_entry_names():
    assert entry_names("tests/x.py::test_a", "vm") == ("test_a[vm]", "tests/x.py::test_a[vm]", "vm")
    assert entry_names("x.py::C::test_b[1-a]", "ctr") == ("test_b[1-a-ctr]", "x.py::C::test_b[1-a-ctr]", "1-a-ctr")
    assert entry_names("test_c", "vm") == ("test_c[vm]", "test_c[vm]", "vm")


def _result(**kw):
    res = ItemResult.from_samples("t.py::test_a", ["baremetal", "vm"], "baremetal",
                     {"baremetal": [1.0, 2.0, 3.0, 4.0], "vm": [2.0, 4.0, 6.0, 8.0]},
                     source={"baremetal": "call", "vm": "call"},
                     ratios={"vm": (2.0, (1.5, math.nan))}, **kw)
    claim = parse_claim("vm <= 3 * baremetal")
    res.claims.append(ClaimResult(res.nodeid, claim, 2.0, (1.5, 2.5), "pass"))
    return res


def test_entries_use_pytest_benchmark_stats():
    meta = {"vm": {"kind": "vm", "accel": "tcg", "vcpus": 1, "memory_mb": 1024, "image": None}}
    base, vm = make_entries(record_of(_result()), "baremetal", meta)
    d = vm.as_dict()
    assert (d["name"], d["fullname"], d["group"], d["param"]) == ("test_a[vm]", "t.py::test_a[vm]", "t.py::test_a",
                                                                 "vm")
    s = d["stats"]
    # by hand: samples 2, 4, 6, 8
    assert (s["min"], s["max"], s["mean"], s["median"], s["rounds"], s["total"]) == (2.0, 8.0, 5.0, 5.0, 4, 20.0)
    assert s["data"] == [2.0, 4.0, 6.0, 8.0] and s["iterations"] == 1
    assert s["ops"] == pytest.approx(4 / 20)
    info = d["extra_info"]
    assert info["virt_env"] == "vm" and info["virt_kind"] == "vm" and info["accel"] == "tcg"
    assert info["vcpus"] == 1 and "image" not in info
    assert info["virt_ratio"] == 2.0 and info["virt_ci"] == [1.5, None]  # NaN is no JSON: None
    assert info["virt_claims"] == [{"claim": "vm <= 3 * baremetal", "verdict": "pass", "ratio": 2.0,
                                    "ci": [1.5, 2.5], "unit": "ratio"}]
    assert base.as_dict()["extra_info"]["virt_ratio"] == 1.0
    assert not vm.has_error


def test_entries_of_a_failed_test_are_flagged():
    res = _result(failure=("vm", "boom"))
    assert all(e.has_error for e in make_entries(record_of(res), "baremetal", {}))


def test_extra_info_without_metadata():
    info = extra_info(record_of(_result()), "baremetal", "baremetal", {})
    assert info["virt_kind"] is None and info["virt_source"] == "call" and info["virt_rounds"] == 4


# -- through pytest ----------------------------------------------------------


def test_benchmark_and_pedantic_in_environments(pytester):
    pytester.makepyfile(test_b=TESTS)
    result = pytester.runpytest_subprocess(*AA, "--virt-json=v.json", "--benchmark-json=b.json")
    result.assert_outcomes(passed=3)
    virt = read_json(pytester, "v.json")
    bench = read_json(pytester, "b.json")
    samples = {(r["test"], r["env"]): r for r in virt["results"]}
    # One value per measured round (3), the median of that round's pedantic
    # samples (4 rounds per run); the raw samples are all kept (12, under the cap)
    assert len(samples[("test_b.py::test_pedantic", "control")]["samples"]) == 3
    assert len(samples[("test_b.py::test_pedantic", "control")]["raw_samples"]) == 12
    assert samples[("test_b.py::test_pedantic", "control")]["source"] == "benchmark"
    assert samples[("test_b.py::test_call", "baremetal")]["source"] == "benchmark"
    assert samples[("test_b.py::test_plain", "baremetal")]["source"] == "call"
    entries = {b["fullname"]: b for b in bench["benchmarks"]}
    assert set(entries) == {f"test_b.py::test_{t}[{e}]" for t in ("pedantic", "call", "plain")
                            for e in ("baremetal", "control")}
    for (test, env), r in samples.items():
        b = entries[f"{test}[{env}]"]
        assert b["group"] == test and b["name"] == f"{test.split('::')[1]}[{env}]"
        assert b["stats"]["data"] == r["samples"]  # the environment's samples, unchanged
        # An entry holds the environment's own samples: their plain median
        # (the table's "median" is the baseline's times the ratio, version 3).
        assert b["stats"]["median"] == pytest.approx(r["median_unpaired"])
        assert b["extra_info"]["virt_env"] == env and b["extra_info"]["virt_kind"] == "baremetal"
    # pedantic's iterations=2: a sample is the time of one call of pause()
    ped = entries["test_b.py::test_pedantic[control]"]["stats"]["median"]
    assert 0.003 < ped < 0.04
    assert bench["virtoverhead"]["baseline"] == "baremetal"
    assert set(bench["virtoverhead"]["environments"]) == {"baremetal", "control"}
    # pytest-benchmark's own table shows each environment's entry
    result.stdout.fnmatch_lines(["*benchmark 'test_b.py::test_pedantic': 2 tests*",
                                 "*test_pedantic[[]baremetal[]]*", "*test_pedantic[[]control[]]*"])


def test_pytest_benchmark_compare_command_reads_the_file(pytester):
    pytester.makepyfile(test_b=TESTS)
    pytester.runpytest_subprocess(*AA, "--benchmark-json=b.json", "-k", "pedantic or plain")
    proc = subprocess.run([sys.executable, "-m", "pytest_benchmark", "compare", "b.json"], cwd=pytester.path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    for name in ("test_pedantic[baremetal]", "test_pedantic[control]", "test_plain[baremetal]",
                 "test_plain[control]"):
        assert name in proc.stdout


def test_autosave_and_compare_across_runs(pytester):
    pytester.makepyfile(test_b=TESTS)
    first = pytester.runpytest_subprocess(*AA, "--benchmark-autosave", "-k", "plain")
    first.assert_outcomes(passed=1)
    [saved] = list((pytester.path / ".benchmarks").rglob("0001_*.json"))
    names = [b["name"] for b in json.loads(saved.read_text())["benchmarks"]]
    assert names == ["test_plain[baremetal]", "test_plain[control]"]
    second = pytester.runpytest_subprocess(*AA, "--benchmark-compare", "-k", "plain")
    second.assert_outcomes(passed=1)
    second.stderr.fnmatch_lines(["*Comparing against benchmarks from*0001_*"])
    for line in ("*test_plain[[]control[]] (0001*", "*test_plain[[]control[]] (NOW)*"):
        second.stdout.fnmatch_lines([line])  # rows sorted by time: any order


def test_no_benchmark_table_when_nothing_asks_for_it(pytester):
    pytester.makepyfile(test_b=TESTS)
    result = pytester.runpytest_subprocess(*AA, "-k", "plain")
    result.assert_outcomes(passed=1)
    assert "benchmark 'test_b.py::test_plain'" not in result.stdout.str()


def test_without_compare_benchmark_runs_on_the_host_as_usual(pytester):
    pytester.makepyfile(test_b=TESTS.replace('os.environ["VIRTOVERHEAD_ENV"] == "control"', "False"))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--virt-envs=baremetal,control=baremetal",
                                           "--benchmark-json=b.json", "-k", "pedantic")
    result.assert_outcomes(passed=1)
    [entry] = read_json(pytester, "b.json")["benchmarks"]
    assert entry["name"] == "test_pedantic" and entry["stats"]["rounds"] == 4
    assert "virt_env" not in entry["extra_info"]


COUNTED = """
import os
import pytest

COUNT = os.path.join(os.path.dirname(__file__), "calls.log")

def work():
    with open(COUNT, "a") as f:
        f.write(os.environ["VIRTOVERHEAD_ENV"] + "\\n")

@pytest.mark.virt()
def test_counted(benchmark):
    benchmark(work)
"""


def test_host_timing_options_reach_the_workers_and_warmup_is_untimed(pytester):
    """--benchmark-min-rounds/--benchmark-max-time of the host's command line
    shape every measured call in the environments (7 samples a round), and
    the warm-up and reporting runs call the function once instead of
    benchmarking it."""
    pytester.makepyfile(test_counted=COUNTED)
    result = pytester.runpytest_subprocess(
        *AA, "--virt-processes=2", "--virt-json=out.json", "--benchmark-min-rounds=7",
        "--benchmark-max-time=0.000001", "--benchmark-min-time=0.000001", "--benchmark-warmup=off")
    result.assert_outcomes(passed=1)
    doc = read_json(pytester, "out.json")
    rounds = [r for e in doc["results"] for r in e["rounds"]]
    assert rounds and {r["n"] for r in rounds} == {7}
    calls = (pytester.path / "calls.log").read_text().split()
    measured = sum(r["n"] for r in rounds)
    # The rest: one warm-up call per process and environment (2 x 2), one
    # reporting run, and pytest-benchmark's calibration calls in the
    # measured rounds (2 per call here). Benchmarked in full, the warm-up and
    # reporting runs alone would add 5 x (7 + 2) calls.
    untimed = len(calls) - measured
    assert 5 <= untimed <= 5 + 3 * len(rounds), (len(calls), measured)


# -- saving options: the host's alone ------------------------------------------
#
# pytest-benchmark's saving options in a user's ``addopts`` (or
# PYTEST_ADDOPTS) reach every worker process's own pytest session; only the
# host may act on them. Otherwise ``--benchmark-autosave`` in the ini leaves
# one file per worker process besides the host's, saved after it (so
# ``--benchmark-compare`` reads a worker's raw runs as "the latest").

SAVING_AA = aa_args(rounds=2, seed=6)

SAVING_TESTS = """
import time
import pytest

@pytest.mark.virt()
def test_bench(benchmark):
    benchmark.pedantic(time.sleep, args=(0.001,), rounds=3)
"""

ENTRIES = ["test_bench[baremetal]", "test_bench[control]"]


def saved(pytester):
    return sorted((pytester.path / ".benchmarks").rglob("*.json")) if (pytester.path / ".benchmarks").exists() \
        else []


def test_autosave_in_ini_addopts_saves_once_on_the_host(pytester):
    pytester.makepyfile(test_b=SAVING_TESTS)
    pytester.makeini("[pytest]\naddopts = --benchmark-autosave\n")
    result = pytester.runpytest_subprocess(*SAVING_AA)
    result.assert_outcomes(passed=1)
    files = saved(pytester)
    # Before: three files, the host's 0001 and one per worker process.
    assert len(files) == 1, [f.name for f in files]
    assert files[0].name.startswith("0001_")
    assert [b["name"] for b in json.loads(files[0].read_text())["benchmarks"]] == ENTRIES


def test_save_and_json_from_pytest_addopts_are_the_hosts_alone(pytester, monkeypatch):
    pytester.makepyfile(test_b=SAVING_TESTS)
    # The suite's conftest puts --virt-processes=1 there; the worker
    # processes inherit the variable.
    monkeypatch.setenv("PYTEST_ADDOPTS", "--virt-processes=1 --benchmark-save=mine --benchmark-json=b.json")
    result = pytester.runpytest_subprocess(*SAVING_AA)
    result.assert_outcomes(passed=1)
    files = saved(pytester)
    assert [f.name.split("_", 1)[1] for f in files] == ["mine.json"], [f.name for f in files]
    assert [b["name"] for b in json.loads(files[0].read_text())["benchmarks"]] == ENTRIES
    # A worker's file written over the host's would hold plain test_bench entries.
    assert [b["name"] for b in read_json(pytester, "b.json")["benchmarks"]] == ENTRIES


def test_host_only_options_are_turned_off_and_timing_options_kept():
    option = SimpleNamespace(benchmark_autosave="tag", benchmark_save="x", benchmark_json="b.json",
                             benchmark_compare=True, benchmark_compare_fail=["min:5%"],
                             benchmark_histogram=["h"], benchmark_cprofile_dump=[],
                             benchmark_min_rounds=7, benchmark_disable_gc=True)
    changed = host_only_benchmark_options(option)
    assert sorted(changed) == ["benchmark_autosave", "benchmark_compare", "benchmark_compare_fail",
                               "benchmark_histogram", "benchmark_json", "benchmark_save"]
    assert all(getattr(option, k) == v for k, v in BENCHMARK_HOST_ONLY.items())
    assert option.benchmark_min_rounds == 7 and option.benchmark_disable_gc is True
    # Without pytest-benchmark (no such attributes) nothing happens.
    assert host_only_benchmark_options(SimpleNamespace()) == []
