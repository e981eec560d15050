"""Fixture scopes inside the worker processes: session, module and class
fixtures are set up once per worker process (as in a plain pytest run of
the same tests), function fixtures once per call, and none of it inside
the timed call phase."""

import collections

from virthelp import aa_args

CONFTEST = """
import os, pytest

def log(what):
    with open(os.path.join(os.path.dirname(__file__), "setups.log"), "a") as f:
        f.write(f"{what} {os.getpid()}\\n")

@pytest.fixture(scope="session")
def sess():
    log("session")
    yield 1
    log("session-end")

@pytest.fixture(scope="module")
def mod():
    log("module")
    yield 2
    log("module-end")

@pytest.fixture(scope="class")
def klass():
    log("class")
    yield 4

@pytest.fixture
def fn():
    log("function")
    yield 3
    log("function-end")
"""

TESTS_A = """
import pytest

CLAIM = ["control ~= baremetal +- 90%"]

@pytest.mark.virt(claims=CLAIM)
def test_one(sess, mod, fn):
    assert (sess, mod, fn) == (1, 2, 3)

@pytest.mark.virt(claims=CLAIM)
def test_two(sess, mod, fn):
    assert (sess, mod, fn) == (1, 2, 3)

class TestK:
    @pytest.mark.virt(claims=CLAIM)
    def test_k(self, klass, mod):
        assert (klass, mod) == (4, 2)
"""

TESTS_B = """
import pytest

@pytest.mark.virt(claims=["control ~= baremetal +- 90%"])
def test_three(sess, mod):
    assert (sess, mod) == (1, 2)
"""

ARGS = aa_args("--virt-processes=2", "--virt-calls=2", rounds=3, seed=11)


def _counts(pytester):
    lines = (pytester.path / "setups.log").read_text().split()
    events = collections.Counter(lines[0::2])
    per_pid = collections.defaultdict(collections.Counter)
    for what, pid in zip(lines[0::2], lines[1::2]):
        per_pid[pid][what] += 1
    return events, per_pid


def test_session_and_module_fixtures_once_per_worker_process(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_a=TESTS_A, test_b=TESTS_B)
    result = pytester.runpytest_subprocess(*ARGS)
    result.assert_outcomes(passed=4)
    events, per_pid = _counts(pytester)
    # 2 environments x 2 worker processes, each running tests of both modules.
    assert len(per_pid) == 4
    for pid, seen in per_pid.items():
        assert seen["session"] == 1, (pid, seen)
        assert seen["session-end"] == 1, (pid, seen)
        # Each module's fixture once per process (module b after module a
        # ended: its teardown ran when the process moved to the other module).
        assert seen["module"] <= 2, (pid, seen)
        assert seen["class"] <= 1, (pid, seen)
    # Function fixtures: set up and torn down around every call.
    assert events["function"] == events["function-end"] > 0
    assert events["module"] == events["module-end"]
