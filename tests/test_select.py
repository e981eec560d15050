"""Adoption without editing a test. ``--virt-select=EXPR``
(ini ``virt_select``) compares the unmarked tests matching a ``-k``
expression with the run's claims; marked tests work as before."""


import pytest
from virthelp import aa_args, read_json

AA = aa_args("--virt-json=v.json", rounds=2, seed=4)

SUITE = """
import time
import pytest

def test_parse_small():
    time.sleep(0.001)

def test_parse_big():
    time.sleep(0.002)

def test_render():
    pass

class TestStore:
    def test_write(self):
        time.sleep(0.001)

@pytest.mark.slow
def test_marked_slow():
    time.sleep(0.001)

@pytest.mark.virt(claims=["control <= 50 * baremetal"], rounds=3)
def test_marked():
    time.sleep(0.001)
"""


def compared(pytester):
    data = read_json(pytester, "v.json")
    claims: dict[str, list[str]] = {}
    for c in data["claims"]:
        claims.setdefault(c["test"].split("::", 1)[1], []).append(c["claim"])
    rounds = {t["test"].split("::", 1)[1]: t["rounds"] for t in data["tests"]}
    return rounds, claims


def test_select_compares_matching_unmarked_tests_with_the_runs_claims(pytester):
    pytester.makepyfile(test_suite=SUITE)
    pytester.makeini("[pytest]\nmarkers = slow\nvirt_claims =\n    control <= 100 * baremetal\n")
    result = pytester.runpytest_subprocess(*AA, "--virt-select=parse and not big or Store or slow",
                                           "--virt-claim=control <= 200 * baremetal")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str() + result.stderr.str()
    result.assert_outcomes(passed=6)
    rounds, claims = compared(pytester)
    # pytest's -k matcher: names (substrings), class names, marker names.
    assert set(rounds) == {"test_parse_small", "TestStore::test_write", "test_marked_slow", "test_marked"}
    assert rounds["test_parse_small"] == 2 and rounds["test_marked"] == 3  # the marker's rounds= stays
    run_claims = ["control <= 100 * baremetal", "control <= 200 * baremetal"]
    for test in ("test_parse_small", "TestStore::test_write", "test_marked_slow"):
        assert claims[test] == run_claims
    assert claims["test_marked"] == ["control <= 50 * baremetal", *run_claims]
    result.stdout.fnmatch_lines(["*test_suite.py::test_parse_small*baremetal*baseline*"])
    assert "::test_render" not in result.stdout.str()


def test_ini_virt_select_and_minus_k_still_chooses_what_runs(pytester):
    pytester.makepyfile(test_suite=SUITE)
    pytester.makeini("[pytest]\nmarkers = slow\nvirt_select = parse\n")
    result = pytester.runpytest_subprocess(*AA, "-k", "not small")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str() + result.stderr.str()
    rounds, claims = compared(pytester)
    assert set(rounds) == {"test_parse_big", "test_marked"}
    assert "test_parse_big" not in claims  # no run-wide claims: compared, no verdicts


def test_without_select_only_marked_tests_are_compared(pytester):
    pytester.makepyfile(test_suite=SUITE)
    pytester.makeini("[pytest]\nmarkers = slow\n")
    result = pytester.runpytest_subprocess(*AA, "-k", "marked")
    assert result.ret == pytest.ExitCode.OK
    rounds, _ = compared(pytester)
    assert set(rounds) == {"test_marked"}


@pytest.mark.parametrize("source", ["option", "ini"])
def test_malformed_expression_is_a_usage_error_naming_the_option(pytester, source):
    pytester.makepyfile(test_suite=SUITE)
    args = aa_args()
    if source == "option":
        args.append("--virt-select=parse and (")
    else:
        pytester.makeini("[pytest]\nvirt_select = parse and (\n")
    result = pytester.runpytest_subprocess(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--virt-select (or ini virt_select): invalid -k expression 'parse and (' "
                                 "at column 12: *"])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


def test_select_matching_nothing_says_so(pytester):
    pytester.makepyfile(test_suite="def test_a():\n    pass\n")
    result = pytester.runpytest_subprocess(*AA, "--virt-select=nothing_here")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*no test marked @pytest.mark.virt was run and none matched "
                                 "--virt-select='nothing_here'*"])
