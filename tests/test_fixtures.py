"""The environment fixtures, driven from ordinary tests (pytester)."""

FIXTURE_TESTS = """
import os
import pytest
from pytest_virtoverhead.envs import RemoteError, SerializationError


def getpid():
    return os.getpid()


def env_name():
    return os.environ.get("VIRTOVERHEAD_ENV")


def divide(a, b):
    return a / b


def add(a, b=0):
    return a + b


def test_run_in_a_worker_process(baremetal):
    assert baremetal.run(getpid) != os.getpid()
    assert baremetal.run(env_name) == "baremetal"
    assert baremetal.run(add, 2, b=3) == 5
    assert baremetal.metadata["kind"] == "baremetal"
    assert baremetal.metadata["cpuset"]


def test_remote_exception_carries_the_traceback(baremetal):
    with pytest.raises(RemoteError) as info:
        baremetal.run(divide, 1, 0)
    assert info.value.type_name == "ZeroDivisionError"
    assert "in divide" in info.value.remote_traceback
    assert "return a / b" in str(info.value)


def test_arguments_that_cannot_cross(baremetal):
    with pytest.raises(SerializationError, match="positional argument 0 of add cannot cross"):
        baremetal.run(add, object())
    with pytest.raises(SerializationError, match="only functions defined at module level"):
        baremetal.run(lambda: 1)


def test_benchmark_returns_a_measurement(baremetal):
    m = baremetal.pedantic(add, args=(1, 2), samples=4, sample_time=0.001)
    assert m.env == "baremetal" and len(m.samples) == 4 and m.median > 0
    assert m.metadata["kind"] == "baremetal"
    assert len(baremetal.benchmark(add, 1, 2).samples) == 15


def test_virt_envs_mapping(virt_envs):
    assert list(virt_envs) == ["baremetal", "control"]
    assert virt_envs["control"].run(env_name) == "control"
    with pytest.raises(KeyError, match="environments of this run: baremetal, control"):
        virt_envs["nope"]
"""


def test_fixtures(pytester):
    pytester.makepyfile(test_fx=FIXTURE_TESTS)
    result = pytester.runpytest_subprocess("--virt-envs=baremetal,control=baremetal", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=5)


def test_environment_that_cannot_start_skips_with_a_reason(pytester):
    pytester.makeini("""
        [pytest]
        virt_env_options =
            baremetal: python=/nonexistent/python3
    """)
    pytester.makepyfile("""
        def test_a(baremetal):
            pass
    """)
    result = pytester.runpytest_subprocess("-rs", "-p", "no:cacheprovider")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*baremetal: cannot start the worker with /nonexistent/python3*"])
    required = pytester.runpytest_subprocess("--virt-require=baremetal", "-p", "no:cacheprovider")
    required.assert_outcomes(errors=1)
    required.stdout.fnmatch_lines(["*required (--virt-require) but unavailable*"])
