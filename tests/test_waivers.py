"""Waivers that expire. A known, accepted failure is waived with
a reason and an end date (marker ``waive=`` or ini ``virt_waivers``); a
waiver past its date fails the test and names itself; a waiver that matches
no claim is a usage error."""

import datetime

import pytest
from virthelp import aa_args, read_json

from pytest_virtoverhead.judge.waivers import WaiverError, marker_waivers, parse_ini_waiver, today

AA = aa_args("--virt-json=v.json", rounds=3, seed=4)

SUITE = """
import time
import pytest

@pytest.mark.virt(claims=["baremetal >= 1 s", "control <= 5 s"],
                  waive={"baremetal>=1s": ("2027-01-31", "sleeps are short; issue 42")})
def test_marker():
    time.sleep(0.002)

@pytest.mark.virt(claims=["control >= baremetal + 1 s"])
def test_ini():
    time.sleep(0.002)
"""

INI = ("[pytest]\nvirt_waivers =\n"
       "    test_w.py::test_ini: control >= baremetal + 1 s until 2027-01-31: until the kernel update\n")


# -- parsing ---------------------------------------------------------------------


def test_ini_entry_forms():
    w = parse_ini_waiver("container <= 1.05 * baremetal until 2027-01-31: seccomp: see issue 7", 1)
    assert (w.scope, w.claim.text, w.until, w.reason) == (
        None, "container <= 1.05 * baremetal", datetime.date(2027, 1, 31), "seccomp: see issue 7")
    w = parse_ini_waiver("t.py::TestA::test_b: vm<=2*baremetal until 2027-01-31: wait until the new kernel", 3)
    assert (w.scope, w.claim.text, w.reason, w.source) == (
        "t.py::TestA::test_b", "vm<=2*baremetal", "wait until the new kernel", "virt_waivers (ini) entry 3")
    assert w.applies_to("t.py::TestA::test_b") and w.applies_to("t.py::TestA::test_b[x]")
    assert not w.applies_to("t.py::TestA::test_bc")
    assert parse_ini_waiver("t.py: c <= 2 * b until 2027-01-31: r", 1).applies_to("t.py::test_z")
    assert parse_ini_waiver("*::test_io_*: c <= 2 * b until 2027-01-31: r", 1).applies_to("x.py::test_io_read")
    assert w.text == "waived until 2027-01-31: wait until the new kernel"


@pytest.mark.parametrize("entry, column, words", [
    ("c <= 2 * b until 2027-02-30: r", 18, "invalid date '2027-02-30': day is out of range for month"),
    ("c <= 2 * b until 31.01.2027: r", 18, "expected YYYY-MM-DD"),
    ("c <= 2 * b until 2027-01-31", 28, "expected ': REASON'"),
    ("c <= 2 * b until 2027-01-31:   ", 28, "expected ': REASON'"),
    ("c <= 2 x b until 2027-01-31: r", 8, "invalid claim: expected '*' after the factor"),
    ("t.py::a: c <= 5 min until 2027-01-31: r", 17, "invalid claim: unknown unit 'min'"),
    ("c <= 2 * b", 11, "expected 'CLAIM until YYYY-MM-DD: REASON'"),
])
def test_malformed_ini_entries_name_entry_and_column(entry, column, words):
    with pytest.raises(WaiverError) as info:
        parse_ini_waiver(entry, 2)
    head, echoed, caret = str(info.value).splitlines()
    assert head.startswith(f"virt_waivers (ini), entry 2, column {column}: ") and words in head, head
    assert echoed == "    " + entry.strip() and caret.index("^") - 4 == column - 1


def test_marker_waivers():
    (w,) = marker_waivers("t.py::a", {"c <= 2 * b": (datetime.date(2027, 1, 31), " r ")})
    assert (w.until, w.reason, w.source) == (datetime.date(2027, 1, 31), "r", "marker of t.py::a")
    for waive, words in [({"c <= 2 * b": ("2027-13-01", "r")}, "invalid date '2027-13-01'"),
                         ({"c <= 2 * b": ("2027-01-31", "")}, "needs a reason"),
                         ({"c <= 2 * b": "2027-01-31"}, "must be a pair (UNTIL, REASON)"),
                         (["c <= 2 * b"], "expected a dict"),
                         ({"c <= 2 x b": ("2027-01-31", "r")}, "invalid claim at column 8")]:
        with pytest.raises(WaiverError) as info:
            marker_waivers("t.py::a", waive)
        assert words in str(info.value) and str(info.value).startswith("t.py::a: @pytest.mark.virt(waive=...)")


def test_today_can_be_injected(monkeypatch):
    monkeypatch.setenv("VIRTOVERHEAD_TODAY", "2027-02-01")
    assert today() == datetime.date(2027, 2, 1)
    monkeypatch.setenv("VIRTOVERHEAD_TODAY", "tomorrow")
    with pytest.raises(WaiverError, match="VIRTOVERHEAD_TODAY: invalid date 'tomorrow'"):
        today()
    monkeypatch.delenv("VIRTOVERHEAD_TODAY")
    assert today() == datetime.date.today()


# -- end to end ------------------------------------------------------------------


def test_waived_failures_pass_and_say_so(pytester, monkeypatch):
    monkeypatch.setenv("VIRTOVERHEAD_TODAY", "2027-01-31")  # the last day of the waivers
    pytester.makepyfile(test_w=SUITE)
    pytester.makeini(INI)
    result = pytester.runpytest_subprocess(*AA, "--virt-markdown=v.md")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str() + result.stderr.str()
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines([
        "claims:",
        "  FAIL (waived) test_w.py::test_marker: baremetal >= 1 s  baremetal * ms [[]*]",
        "* waived until 2027-01-31: sleeps are short; issue 42",
        "  pass          test_w.py::test_marker: control <= 5 s  control *",
        "  FAIL (waived) test_w.py::test_ini: control >= baremetal + 1 s  control - baremetal *",
        "* waived until 2027-01-31: until the kernel update",
    ])
    claims = {c["claim"]: c for c in read_json(pytester, "v.json")["claims"]}
    waived = claims["baremetal >= 1 s"]
    assert waived["verdict"] == "fail"
    assert waived["waived"] == "waived until 2027-01-31: sleeps are short; issue 42"
    assert waived["waiver"] == {"until": "2027-01-31", "reason": "sleeps are short; issue 42",
                                "source": "marker of test_w.py::test_marker", "expired": False}
    ini = claims["control >= baremetal + 1 s"]
    assert ini["waived"] == "waived until 2027-01-31: until the kernel update"
    assert ini["waiver"]["source"] == "virt_waivers (ini) entry 1"
    assert ini["waiver"]["scope"] == "test_w.py::test_ini"
    assert "waived" not in claims["control <= 5 s"]
    assert "waived until 2027-01-31: sleeps are short; issue 42" in (pytester.path / "v.md").read_text()


def test_expired_waiver_fails_the_test_and_names_itself(pytester, monkeypatch):
    monkeypatch.setenv("VIRTOVERHEAD_TODAY", "2027-02-01")
    pytester.makepyfile(test_w=SUITE)
    pytester.makeini(INI)
    result = pytester.runpytest_subprocess(*AA)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines([
        "*_ test_marker _*",
        "claim 'baremetal >= 1 s' fail: baremetal * ms, 95% CI *(needs baremetal >= 1 s)",
        "waiver of claim 'baremetal>=1s' expired on 2027-01-31 (today is 2027-02-01): \"sleeps are short; "
        "issue 42\" (marker of test_w.py::test_marker); fix the overhead, or renew the waiver*",
        "*_ test_ini _*",
        "*waiver of claim 'control >= baremetal + 1 s' expired on 2027-01-31 (today is 2027-02-01): "
        "\"until the kernel update\" (virt_waivers (ini) entry 1)*",
    ])
    result.stdout.fnmatch_lines(["*WAIVER EXPIRED: waived until 2027-01-31: sleeps are short; issue 42 "
                                 "(marker of test_w.py::test_marker)"])
    claims = {c["claim"]: c for c in read_json(pytester, "v.json")["claims"]}
    assert claims["baremetal >= 1 s"]["waiver"]["expired"] is True and "waived" not in claims["baremetal >= 1 s"]


def test_expired_waiver_fails_even_when_the_claim_passes(pytester, monkeypatch):
    monkeypatch.setenv("VIRTOVERHEAD_TODAY", "2027-02-01")
    pytester.makepyfile(test_p="""
import pytest

@pytest.mark.virt(claims=["control <= 5 s"], waive={"control <= 5 s": ("2027-01-31", "old worry")})
def test_a():
    pass
""")
    result = pytester.runpytest_subprocess(*AA)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["waiver of claim 'control <= 5 s' expired on 2027-01-31*\"old worry\"*"])


@pytest.mark.parametrize("marker, ini, words", [
    ('claims=["control <= 5 s"], waive={"control <= 4 s": ("2027-01-31", "r")}', "",
     "*marker of test_u.py::test_a: the waiver of 'control <= 4 s' (until 2027-01-31) matches no claim; "
     "claims: 'control <= 5 s'. Remove the waiver or correct its claim*"),
    ('claims=["control <= 5 s"]', "virt_waivers =\n    control <= 1 s until 2027-01-31: r\n",
     "*virt_waivers (ini) entry 1: the waiver of 'control <= 1 s' (until 2027-01-31) matches no claim; "
     "claims: 'control <= 5 s'*"),
    ('claims=["control <= 5 s"]', "virt_waivers =\n    test_u.py::test_zz: control <= 5 s until 2027-01-31: r\n",
     "*virt_waivers (ini) entry 1: the waiver of 'control <= 5 s' is for 'test_u.py::test_zz', "
     "which names no collected test*"),
])
def test_waiver_matching_no_claim_is_a_usage_error(pytester, marker, ini, words):
    pytester.makepyfile(test_u=f"""
import pytest

@pytest.mark.virt({marker})
def test_a():
    pass
""")
    pytester.makeini("[pytest]\n" + ini)
    result = pytester.runpytest_subprocess(*AA)
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str()
    result.stderr.fnmatch_lines([words])


def test_malformed_dates_are_usage_errors_with_the_place(pytester):
    pytester.makepyfile(test_d="""
import pytest

@pytest.mark.virt(claims=["control <= 5 s"])
def test_a():
    pass
""")
    pytester.makeini("[pytest]\nvirt_waivers =\n    control <= 5 s until 2027-01-31: fine\n"
                     "    control <= 5 s until 2027-1-31: typo\n")
    result = pytester.runpytest_subprocess(*AA)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([
        "*virt_waivers (ini), entry 2, column 22: invalid date '2027-1-31': expected YYYY-MM-DD, e.g. 2027-01-31",
        "    control <= 5 s until 2027-1-31: typo",
        "                         ^",
    ])
    pytester.makeini("[pytest]\n")
    pytester.makepyfile(test_d="""
import pytest

@pytest.mark.virt(claims=["control <= 5 s"], waive={"control <= 5 s": ("2027-02-29", "r")})
def test_a():
    pass
""")
    result = pytester.runpytest_subprocess(*AA)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*test_d.py::test_a: @pytest.mark.virt(waive=...): the waiver of "
                                 "'control <= 5 s': invalid date '2027-02-29': day is out of range for month*"])


def test_scoped_waivers_for_tests_outside_this_run_are_let_be(pytester):
    pytester.makepyfile(test_u="""
import pytest

@pytest.mark.virt(claims=["control <= 5 s"])
def test_a():
    pass

@pytest.mark.virt(claims=["control <= 4 s"])
def test_b():
    pass
""")
    pytester.makeini("[pytest]\nvirt_waivers =\n"
                     "    test_other.py::test_x: control <= 5 s until 2027-01-31: file not collected\n"
                     "    test_u.py::test_b: control <= 4 s until 2027-01-31: deselected by -k\n"
                     "    control <= 5 s until 2027-01-31: unscoped, matches test_a\n")
    result = pytester.runpytest_subprocess(*AA, "--collect-only", "-k", "test_a")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str() + result.stderr.str()


WARNED = """
import pytest

@pytest.mark.virt(claims=["control <= 100 * baremetal"],
                  waive={"control <= 100 * baremetal": ("2027-01-31", "the marker's reason")})
def test_a():
    pass

def test_plain():
    pass
"""


def test_what_matches_nothing_and_duplicate_waivers_are_warned(pytester):
    pytester.makepyfile(test_warned=WARNED)
    pytester.makeini("[pytest]\nvirt_waivers =\n"
                     "    control <= 100 * baremetal until 2027-02-28: the ini's reason\n")
    result = pytester.runpytest_subprocess(*aa_args(
        "--collect-only", "--virt-select=nomatch", "--virt-claim=test_warned.py::test_a: control <= 2 * baremetal"))
    result.stdout.fnmatch_lines_random([
        "*PytestConfigWarning: --virt-select 'nomatch' matches no unmarked test of this run*",
        "*PytestConfigWarning: --virt-claim 1: the group 'test_warned.py::test_a' matches no compared test of "
        "this run*(-k expressions match test names and keywords, not node ids*",
        "*PytestConfigWarning: 2 waivers of claim 'control <= 100 * baremetal' (first for "
        "test_warned.py::test_a): marker of test_warned.py::test_a, virt_waivers (ini) entry 1; only the first "
        "applies (waived until 2027-01-31: the marker's reason): remove the others",
    ])
