"""Criteria per test or group. A run-wide
claim entry ``EXPR: CLAIM`` (ini ``virt_claims``, ``--virt-claim``) applies
CLAIM only to the compared tests matching the ``-k`` expression EXPR, with
pytest's own matcher; plain entries apply to every compared test."""


import pytest
from virthelp import aa_args, read_json

from pytest_virtoverhead.judge.runclaims import parse_run_claims
from pytest_virtoverhead.session.config import build_settings, plan_for_marker

AA = aa_args("--virt-json=v.json", rounds=2, seed=5)

SUITE = """
import pytest

@pytest.mark.virt
def test_io_read():
    pass

@pytest.mark.virt
def test_io_write():
    pass

@pytest.mark.virt
def test_cpu():
    pass

def test_unmarked_io():
    pass

class TestNet:
    @pytest.mark.virt
    def test_send(self):
        pass
"""


def claims_by_test(pytester):
    data = read_json(pytester, "v.json")
    out: dict[str, list[tuple[str, str, str | None]]] = {}
    for c in data["claims"]:
        out.setdefault(c["test"].split("::", 1)[1], []).append((c["claim"], c.get("source"), c.get("group")))
    return out


def test_group_entries_apply_to_the_matching_compared_tests_only(pytester):
    pytester.makepyfile(test_groups=SUITE)
    pytester.makeini("[pytest]\nvirt_claims =\n"
                     "    control <= 100 * baremetal\n"
                     "    io and not write: control <= 200 * baremetal\n"
                     "    TestNet or cpu:control<=300*baremetal\n")
    result = pytester.runpytest_subprocess(*AA, "--virt-claim=write: control <= 400 * baremetal",
                                           "--virt-claim=control <= 500 * baremetal")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str() + result.stderr.str()
    result.assert_outcomes(passed=5)
    got = claims_by_test(pytester)
    plain = [("control <= 100 * baremetal", "virt_claims (ini) entry 1", None),
             ("control <= 500 * baremetal", "--virt-claim 2", None)]
    assert got["test_io_read"] == [plain[0], ("control <= 200 * baremetal", "virt_claims (ini) entry 2",
                                              "io and not write"), plain[1]]
    assert got["test_io_write"] == [plain[0], ("control <= 400 * baremetal", "--virt-claim 1", "write"),
                                    plain[1]]
    group3 = ("control<=300*baremetal", "virt_claims (ini) entry 3", "TestNet or cpu")
    assert got["test_cpu"] == [plain[0], group3, plain[1]]
    assert got["TestNet::test_send"] == [plain[0], group3, plain[1]]
    assert "test_unmarked_io" not in got  # a group chooses among compared tests; it compares nothing itself
    assert "PytestConfigWarning" not in result.stdout.str()


def test_marker_claims_come_first_and_say_so(pytester):
    pytester.makepyfile(test_m="""
import pytest

@pytest.mark.virt(claims=["control <= 50 * baremetal"])
def test_a():
    pass
""")
    pytester.makeini("[pytest]\nvirt_claims =\n    test_a: control <= 50 * baremetal\n    test_a: control <= 60 * baremetal\n")
    result = pytester.runpytest_subprocess(*AA)
    assert result.ret == pytest.ExitCode.OK, result.stdout.str() + result.stderr.str()
    assert claims_by_test(pytester)["test_a"] == [
        ("control <= 50 * baremetal", "marker", None),  # the same claim from a group is not added twice
        ("control <= 60 * baremetal", "virt_claims (ini) entry 2", "test_a")]


def test_groups_apply_to_tests_virt_select_picks(pytester):
    pytester.makepyfile(test_groups=SUITE)
    pytester.makeini("[pytest]\nvirt_claims =\n    unmarked: control <= 200 * baremetal\n")
    result = pytester.runpytest_subprocess(*AA, "--virt-select=unmarked", "-k", "unmarked")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str() + result.stderr.str()
    assert claims_by_test(pytester) == {
        "test_unmarked_io": [("control <= 200 * baremetal", "virt_claims (ini) entry 1", "unmarked")]}


def test_a_group_that_matches_no_compared_test_is_a_warning(pytester):
    pytester.makepyfile(test_groups=SUITE)
    pytester.makeini("[pytest]\nvirt_claims =\n    control <= 100 * baremetal\n"
                     "    nosuchtest or unmarked: control <= 2 * baremetal\n")
    result = pytester.runpytest_subprocess(*AA, "-k", "cpu")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str() + result.stderr.str()
    result.stdout.fnmatch_lines([
        "*PytestConfigWarning: virt_claims (ini) entry 2: the group 'nosuchtest or unmarked' matches no "
        "compared test of this run, so its claim 'control <= 2 * baremetal' is not checked*"])


@pytest.mark.parametrize("ini, cli, lines", [
    ("    io and (: control <= 2 * baremetal\n", [],
     ["ERROR: virt_claims (ini), entry 1, column 9: invalid -k expression: expected not OR left parenthesis "
      "OR identifier; got end of input",
      "    io and (: control <= 2 * baremetal",
      "            ^"]),
    ("    control <= 100 * baremetal\n    io or: control <= 2 * baremetal\n", [],
     ["ERROR: virt_claims (ini), entry 2, column 6: invalid -k expression: *",
      "    io or: control <= 2 * baremetal",
      "         ^"]),
    ("    io: control <= 2 x baremetal\n", [],
     ["ERROR: virt_claims (ini), entry 1, column 18: invalid claim: expected '*' after the factor, found 'x'",
      "    io: control <= 2 x baremetal",
      "                     ^"]),
    ("    io: nosuch <= 2 * baremetal\n", [],
     ["ERROR: virt_claims (ini), entry 1, column 5: invalid claim: unknown environment 'nosuch'*",
      "    io: nosuch <= 2 * baremetal",
      "        ^"]),
    ("", ["--virt-claim=control <= 100 * baremetal", "--virt-claim= : control <= 2 * baremetal"],
     ["ERROR: --virt-claim, entry 2, column 1: expected a -k expression before ':'*",
      "    : control <= 2 * baremetal",
      "    ^"]),
    ("", ["--virt-claim=io and and: control <= 2 * baremetal"],
     ["ERROR: --virt-claim, entry 1, column 8: invalid -k expression: *",
      "    io and and: control <= 2 * baremetal",
      "           ^"]),
])
def test_malformed_group_entries_are_usage_errors_with_the_entry_and_column(pytester, ini, cli, lines):
    pytester.makepyfile(test_groups=SUITE)
    pytester.makeini("[pytest]\nvirt_claims =\n" + ini if ini else "[pytest]\n")
    result = pytester.runpytest_subprocess(*AA, *cli)
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str() + result.stderr.str()
    result.stderr.fnmatch_lines(lines)


def test_plain_entries_keep_their_error_text(pytester):
    pytester.makepyfile(test_groups=SUITE)
    pytester.makeini("[pytest]\nvirt_claims =\n    control <= 1.05 x baremetal\n")
    result = pytester.runpytest_subprocess(*AA)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: virt_claims (ini): invalid claim at column 17: expected '*' after the "
                                 "factor, found 'x'"])


# -- the pure parts ------------------------------------------------------------


def test_the_last_colon_ends_the_expression():
    # A claim has no ':' (the grammar has no such token); a test id's '::' belongs to EXPR.
    (rc,) = parse_run_claims(["test_io.py::test_read: vm <= 1.2 * baremetal + 3 ms"], "virt_claims (ini)",
                             ["baremetal", "vm"])
    assert (rc.expr, rc.claim.text, rc.source, rc.n) == ("test_io.py::test_read", "vm <= 1.2 * baremetal + 3 ms",
                                                         "virt_claims (ini) entry 1", 1)
    (plain,) = parse_run_claims(["vm <= 3 ms"], "--virt-claim", ["baremetal", "vm"])
    assert (plain.expr, plain.source) == (None, "--virt-claim 1")


def test_plan_takes_plain_claims_and_the_groups_it_is_given():
    s = build_settings({"envs": "baremetal,vm", "ini_claims": ["vm <= 2 * baremetal", "io: vm <= 3 * baremetal",
                                                               "cpu: vm <= 4 * baremetal"]})
    assert [c.text for c in s.claims] == ["vm <= 2 * baremetal"]
    io, cpu = s.run_claims[1:]
    plan = plan_for_marker("t.py::test_io", (), {}, s, [io])
    assert [c.text for c in plan.claims] == ["vm <= 2 * baremetal", "vm <= 3 * baremetal"]
    assert plan.sources[plan.claims[1]] == ("virt_claims (ini) entry 2", "io")
    plan = plan_for_marker("t.py::test_x", (), {"claims": ["vm <= 9 * baremetal"]}, s)
    assert [c.text for c in plan.claims] == ["vm <= 9 * baremetal", "vm <= 2 * baremetal"]
    assert plan.sources[plan.claims[0]] == ("marker", None)


def test_a_group_claim_about_an_absent_environment_is_skipped_for_its_tests():
    s = build_settings({"envs": "baremetal,container", "ini_claims": ["io: vm <= 3 * baremetal"]})
    plan = plan_for_marker("t.py::test_io", (), {}, s, s.run_claims)
    assert plan.claims == [] and [(c.text, r) for c, r in plan.skipped_claims] == [
        ("vm <= 3 * baremetal", "vm: not in this run")]
