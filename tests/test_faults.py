"""Faults provoked for real with baremetal workers (container and VM faults
live in tests/integration)."""

import json

FAULTS = """
import os, time, pytest

@pytest.mark.virt
def test_dies():
    if os.environ["VIRTOVERHEAD_ENV"] == "control":
        os._exit(3)

@pytest.mark.virt
def test_hangs():
    if os.environ["VIRTOVERHEAD_ENV"] == "control":
        time.sleep(60)

@pytest.mark.virt(claims=["control <= 100 * baremetal"])
def test_after():
    time.sleep(0.01)
"""


def test_dead_and_hung_workers_fail_their_test_and_are_replaced(pytester):
    pytester.makepyfile(test_faults=FAULTS)
    result = pytester.runpytest_subprocess(
        "--virt-compare", "--virt-envs=baremetal,control=baremetal", "--virt-rounds=2",
        "--virt-timeout=3", "--virt-json=o.json", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=2, passed=1)
    result.stdout.fnmatch_lines([
        "*the worker in environment 'control' died during 'item'*",
        "*worker exit code: 3*",
    ])
    result.stdout.fnmatch_lines(["*'item' in environment 'control' did not finish within 3 s*"])
    data = json.loads((pytester.path / "o.json").read_text())
    # The test after the faults ran in fresh workers, and the results of
    # every test are in the file.
    assert [c["verdict"] for c in data["claims"]] == ["pass"]
    assert {t["test"].split("::")[1]: t["outcome"] for t in data["tests"]} == {
        "test_dies": "failed", "test_hangs": "failed", "test_after": "measured"}
    assert data["environments"]["control"]["kind"] == "baremetal"


FUNCS = """
import pytest
from pytest_virtoverhead.envs import RemoteError, SerializationError


def inner(x):
    raise ValueError(f"bad value {x}")


def outer(x):
    return inner(x) + 1


def not_json():
    return {1, 2, 3}


def ok():
    return 1


def test_remote_traceback_names_user_file_and_line(baremetal):
    with pytest.raises(RemoteError) as info:
        baremetal.benchmark(outer, 5)
    tb = info.value.remote_traceback
    assert "test_funcs.py\\", line 10, in outer" in tb
    assert "test_funcs.py\\", line 6, in inner" in tb
    assert "ValueError: bad value 5" in tb


def test_result_that_cannot_cross(baremetal):
    with pytest.raises(RemoteError, match="cannot be sent back to the host as JSON"):
        baremetal.run(not_json)
    # The worker is still serving.
    assert baremetal.run(ok) == 1


def test_bad_keyword_argument(baremetal):
    with pytest.raises(SerializationError, match="argument 'x' of outer cannot cross"):
        baremetal.run(outer, x=b"bytes")
"""


def test_function_faults(pytester):
    pytester.makepyfile(test_funcs=FUNCS)
    result = pytester.runpytest_subprocess("--virt-envs=baremetal", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)
