"""Issue 13: pytest-benchmark's saving options in a user's ``addopts`` (or
PYTEST_ADDOPTS) reach every worker process's own pytest session; only the
host may act on them. Before the fix, ``--benchmark-autosave`` in the ini
left one file per worker process besides the host's, saved after it (so
``--benchmark-compare`` then read a worker's raw runs as "the latest")."""

import json
from types import SimpleNamespace

from pytest_virtoverhead.itemrunner import BENCHMARK_HOST_ONLY, host_only_benchmark_options

AA = ["--virt-compare", "--virt-envs=baremetal,control=baremetal", "--virt-rounds=2", "--virt-seed=6",
      "-p", "no:cacheprovider"]

TESTS = """
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
    pytester.makepyfile(test_b=TESTS)
    pytester.makeini("[pytest]\naddopts = --benchmark-autosave\n")
    result = pytester.runpytest_subprocess(*AA)
    result.assert_outcomes(passed=1)
    files = saved(pytester)
    # Before: three files, the host's 0001 and one per worker process.
    assert len(files) == 1, [f.name for f in files]
    assert files[0].name.startswith("0001_")
    assert [b["name"] for b in json.loads(files[0].read_text())["benchmarks"]] == ENTRIES


def test_save_and_json_from_pytest_addopts_are_the_hosts_alone(pytester, monkeypatch):
    pytester.makepyfile(test_b=TESTS)
    # The suite's conftest puts --virt-processes=1 there; the worker
    # processes inherit the variable.
    monkeypatch.setenv("PYTEST_ADDOPTS", "--virt-processes=1 --benchmark-save=mine --benchmark-json=b.json")
    result = pytester.runpytest_subprocess(*AA)
    result.assert_outcomes(passed=1)
    files = saved(pytester)
    assert [f.name.split("_", 1)[1] for f in files] == ["mine.json"], [f.name for f in files]
    assert [b["name"] for b in json.loads(files[0].read_text())["benchmarks"]] == ENTRIES
    # A worker's file written over the host's would hold plain test_bench entries.
    assert [b["name"] for b in json.loads((pytester.path / "b.json").read_text())["benchmarks"]] == ENTRIES


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
