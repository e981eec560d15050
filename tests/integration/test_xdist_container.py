"""pytest-xdist with a real container environment (issue 23): two workers,
one CPU each, every container pinned to its worker's CPU, one report.

Skips without a Docker daemon (fails when containers are required, see
envrequire.py). The CPU locks live in a directory of the test's own.
"""

from __future__ import annotations

import os

import pytest
from envrequire import read_json

from pytest_virtoverhead.session import hostlock

pytest.importorskip("xdist")
pytestmark = [pytest.mark.container,
              pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs, one per worker")]


def test_two_workers_pin_their_containers(pytester, docker_client, tmp_path, monkeypatch):
    monkeypatch.setenv(hostlock.LOCK_DIR_ENV, str(tmp_path / "locks"))
    pytester.makepyfile("""
        import pytest

        def spin():
            s = 0
            for i in range(20000):
                s += i * i
            return s

        @pytest.mark.virt(claims=["container ~= baremetal +- 50%"])
        @pytest.mark.parametrize("i", range(4))
        def test_cpu(i):
            spin()
    """)
    cpus = sorted(os.sched_getaffinity(0))[:2]
    result = pytester.runpytest_subprocess(
        "--virt-compare", "--virt-envs=baremetal,container", "--virt-rounds=3", "-p", "no:cacheprovider",
        "-n", "2", f"--virt-cpus={cpus[0]},{cpus[1]}", "--virt-json=out.json", "--virt-require=container")
    result.assert_outcomes(passed=4)
    data = read_json(pytester, "out.json")
    assert len(data["claims"]) == 4
    pinned = data["environments"]["container"]["xdist_cpus"]
    workers = data["xdist"]["workers"]
    # Each worker's container ran on that worker's CPU, and no two shared one.
    assert sorted(pinned) == sorted(workers) == ["gw0", "gw1"]
    for wid, w in workers.items():
        assert [int(c) for c in str(pinned[wid]).strip("[]").split(",")] == w["cpus"]
    assert sorted(w["cpus"][0] for w in workers.values()) == cpus
