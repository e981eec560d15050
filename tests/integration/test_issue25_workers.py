"""Issue 25, points 5 and 7, against the real Docker daemon (and the host):
the worker processes a worker starts and whatever they start end with
them, double-forked daemons included; an out-of-memory kill while worker
processes start is named with the limit."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.usefixtures("docker_client")

OOM_AT_START = """
import pytest

HOLD = bytearray(150 << 20)  # each worker process that collects this holds 150 MiB
for i in range(0, len(HOLD), 4096):
    HOLD[i] = 1

@pytest.mark.virt(claims=["container <= 100 * baremetal"])
def test_a():
    pass
"""


def test_oom_while_worker_processes_start_names_the_oom_and_the_limit(pytester):
    pytester.makepyfile(test_oomstart=OOM_AT_START)
    result = pytester.runpytest_subprocess(
        "--virt-compare", "--virt-envs=baremetal,container", "--virt-memory=256m", "--virt-processes=2",
        "--virt-rounds=2", "-p", "no:cacheprovider", "-rA")
    out = result.stdout.str()
    assert "OOM-killed: the environment hit its memory limit (256 MiB, --virt-memory) and the kernel's OOM " \
           "killer ended worker process" in out, out
    assert re.search(r"worker process \d \(pid \d+\) (while|before)", out), out
    assert "no worker process 1 here" not in out
    assert "INTERNALERROR" not in out
