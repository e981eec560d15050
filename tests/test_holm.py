"""Many claims without many false alarms. ``--virt-correction=holm``
(ini ``virt_correction``) judges the run's claims family-wise: Holm's
step-down over each claim's two one-sided hypotheses ("violated": rejected
means pass; "holds": rejected means fail), at level 1 - confidence. The
default, ``none``, leaves every verdict as it was. Verdict tests here use
constructed estimates, or A/A runs whose verdicts cannot go the other way."""

import math
from statistics import NormalDist

import pytest
from virthelp import aa_args, judging_comparator, read_json

from pytest_virtoverhead.judge import stats
from pytest_virtoverhead.judge.claims import parse_claim
from pytest_virtoverhead.judge.textfmt import method_line
from pytest_virtoverhead.judge.verdict import FAIL, INCONCLUSIVE, PASS
from pytest_virtoverhead.render import markdown
from pytest_virtoverhead.results import ClaimResult, ItemResult
from pytest_virtoverhead.session.judging import Claims, correct, judge

MS = 1e-3


# -- Holm's step-down, by hand -------------------------------------------------


def test_holm_rejects_step_down_and_stops_at_the_first_that_fails():
    # Sorted: 0.005 <= 0.05/4 = 0.0125 yes; 0.01 <= 0.05/3 = 0.01667 yes;
    # 0.03 <= 0.05/2 = 0.025 no: stop (0.04 is not tested, although <= 0.05).
    p = [0.01, 0.04, 0.03, 0.005]
    assert stats.holm(p, 0.05) == [True, False, False, True]
    # Adjusted: 4 * 0.005 = 0.02; 3 * 0.01 = 0.03; max(0.03, 2 * 0.03) = 0.06;
    # max(0.06, 1 * 0.04) = 0.06.
    assert stats.holm_adjusted(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])


def test_holm_all_rejected_and_edge_cases():
    # 0.001 <= 0.05/3; 0.02 <= 0.025; 0.04 <= 0.05.
    assert stats.holm([0.04, 0.001, 0.02], 0.05) == [True, True, True]
    assert stats.holm_adjusted([0.04, 0.001, 0.02]) == pytest.approx([0.04, 0.003, 0.04])
    assert stats.holm([], 0.05) == [] and stats.holm_adjusted([]) == []
    assert stats.holm([math.nan, 0.01], 0.05) == [False, True]  # NaN counts as 1
    assert stats.holm_adjusted([0.6, 0.5]) == [1.0, 1.0]  # capped at 1
    with pytest.raises(ValueError):
        stats.holm([0.01], 0)


def test_one_sided_t_tail():
    assert stats.t_sf(0.0, 5) == pytest.approx(0.5)
    assert stats.t_sf(2.015048, 5) == pytest.approx(0.05, abs=1e-6)  # t(0.95, 5)
    assert stats.t_sf(-2.015048, 5) == pytest.approx(0.95, abs=1e-6)
    assert stats.t_sf(1.959964, math.inf) == pytest.approx(0.025, abs=1e-6)
    assert stats.t_sf(math.inf, 3) == 0.0 and math.isnan(stats.t_sf(1.0, 0))


def test_claim_p_values_by_hand():
    z = NormalDist()
    # One upper bound 2.570582 (t(0.975, 5)) above theta 0, se 1: passes at exactly 0.025.
    p_pass, p_fail = stats.claim_p_values(0.0, 1.0, 5, None, 2.570582)
    assert (p_pass, p_fail) == (pytest.approx(0.025, abs=1e-6), pytest.approx(0.975, abs=1e-6))
    # A lower bound: the mirror image.
    assert stats.claim_p_values(0.0, 1.0, 5, -2.570582, None) == pytest.approx((0.025, 0.975), abs=1e-6)
    # Two bounds [-3, 3], theta 0, normal: both must be cleared, p = P(Z >= 3).
    p_pass, p_fail = stats.claim_p_values(0.0, 1.0, math.inf, -3.0, 3.0)
    assert p_pass == pytest.approx(1 - z.cdf(3))
    # Inside: d = -3 (3 short of the nearer bound): P(Z >= -3) + P(Z >= 3) = 1.
    assert p_fail == pytest.approx(1.0)
    # theta 4 above [-3, 3]: d = 1, w = 6: p_fail = P(Z >= 1) + P(Z >= 7); p_pass = P(Z >= -1).
    p_pass, p_fail = stats.claim_p_values(4.0, 1.0, math.inf, -3.0, 3.0)
    assert p_fail == pytest.approx((1 - z.cdf(1)) + (1 - z.cdf(7)), rel=1e-9)
    assert p_pass == pytest.approx(z.cdf(1))
    # An exact value (se 0) on either side, and on the bound.
    assert stats.claim_p_values(1.0, 0.0, 3, None, 2.0) == (0.0, 1.0)
    assert stats.claim_p_values(3.0, 0.0, 3, None, 2.0) == (1.0, 0.0)
    assert stats.claim_p_values(2.0, 0.0, 3, None, 2.0) == (0.5, 0.5)
    assert stats.claim_p_values(math.nan, 1.0, 3, None, 2.0) == (1.0, 1.0)


# -- the verdicts of a family ------------------------------------------------------


def judged(claim_text, theta, se=1 * MS, n=10, confidence=0.95):
    """A judged claim on a constructed linear (seconds) estimate, normal (df inf)."""
    t = NormalDist().inv_cdf((1 + confidence) / 2)
    est = stats.Estimate(theta, se, math.inf, theta - t * se, theta + t * se, n, n, confidence, "constructed",
                         stats.LINEAR)
    claim = parse_claim(claim_text)
    return ClaimResult("t.py::test_a", claim, est.ratio, est.ci, claim.verdict(est.ratio, est.ci), estimate=est)


def correct_verdicts(results, confidence, correction, peers=()):
    """judging.correct, its new verdicts put in the results (as the session does)."""
    method, corrected = correct(results, confidence, correction, peers)
    for res, claims in zip(results, corrected):
        res.claims = list(claims)
    return method


def family(*claims):
    res = ItemResult.from_samples("t.py::test_a", ["baremetal", "vm"], "baremetal",
                                  {"baremetal": [1.0] * 10, "vm": [1.0] * 10}, processes=1)
    res.claims = list(claims)
    return res


def test_holm_over_four_claims_by_hand():
    # 'vm <= 10 ms' with se 1 ms: z = (10 ms - theta) / 1 ms.
    a = judged("vm <= 10 ms", 7.0 * MS)   # p_pass = P(Z >= 3.0) = 0.0013499
    b = judged("vm <= 10 ms", 7.8 * MS)   # p_pass = P(Z >= 2.2) = 0.0139034
    c = judged("vm <= 10 ms", 8.0 * MS)   # p_pass = P(Z >= 2.0) = 0.0227501
    d = judged("vm <= 10 ms", 12.5 * MS)  # p_fail = P(Z >= 2.5) = 0.0062097
    # Each on its own 95% interval (one-sided 0.025): three pass, one fails.
    assert [x.verdict for x in (a, b, c, d)] == [PASS, PASS, PASS, FAIL]
    res = family(a, b, c, d)
    method = correct_verdicts([res], 0.95, "holm")
    assert method == {"confidence": 0.95, "correction": "holm", "family_size": 4}
    before = (a, b, c, d)
    a, b, c, d = res.claims
    # New verdicts: the claims judged before are left as they were.
    assert [x.verdict for x in before] == [PASS, PASS, PASS, FAIL]
    # 8 hypotheses at 0.05: 0.00135 <= 0.05/8 = 0.00625 (a passes); 0.00621 <=
    # 0.05/7 = 0.00714 (d fails); 0.0139 > 0.05/6 = 0.00833: stop.
    assert [x.verdict for x in (a, b, c, d)] == [PASS, INCONCLUSIVE, INCONCLUSIVE, FAIL]
    assert [x.verdict_uncorrected for x in (a, b, c, d)] == [PASS, PASS, PASS, FAIL]
    # Adjusted: 8 * 0.0013499 = 0.010799; max(., 7 * 0.0062097) = 0.043468;
    # max(., 6 * 0.0139034) = 0.083420; max(., 5 * 0.0227501) = 0.113750.
    assert [x.p_adjusted for x in (a, d, b, c)] == pytest.approx([0.010799, 0.043468, 0.083420, 0.113750],
                                                                  abs=2e-6)
    # An inconclusive claim's rounds needed are at the Bonferroni level of 4
    # claims, 1 - 0.05/4: z = 2.4977; b is 2.2 ms from its bound: 10 * (2.4977/2.2)^2.
    z = NormalDist().inv_cdf(1 - 0.05 / 8)
    assert b.rounds_needed == pytest.approx(10 * (z / 2.2) ** 2)
    assert b.what_would_decide().startswith(
        "Holm over 4 claims: adjusted p=0.0834, so not pass as its own 95% interval alone says; the data resolve")
    assert "Holm over 4 claims: adjusted p=0.0435" in d.message()
    entry = b.to_json()
    assert (entry["verdict"], entry["verdict_uncorrected"]) == ("inconclusive", "pass")
    assert entry["p_adjusted"] == pytest.approx(0.083420, abs=2e-6)
    # Applied once: a second call changes nothing.
    correct_verdicts([res], 0.95, "holm")
    assert [x.verdict for x in res.claims] == [PASS, INCONCLUSIVE, INCONCLUSIVE, FAIL]


@pytest.mark.parametrize("text, theta", [
    ("vm <= 10 ms", 8.0 * MS), ("vm <= 10 ms", 9.0 * MS), ("vm <= 10 ms", 12.1 * MS),
    ("vm >= 10 ms", 12.1 * MS), ("vm ~= 10 ms +- 3 ms", 10.5 * MS), ("vm ~= 10 ms +- 3 ms", 15.0 * MS),
    ("vm ~= 10 ms +- 3 ms", 12.0 * MS),
])
def test_one_claim_alone_gets_the_same_verdict_as_without_correction(text, theta):
    one = judged(text, theta)
    before = one.verdict
    res = family(one)
    correct_verdicts([res], 0.95, "holm")
    (one,) = res.claims
    assert one.verdict == before and one.verdict_uncorrected == before


def test_none_changes_nothing_and_skipped_claims_are_not_in_the_family():
    a, b = judged("vm <= 10 ms", 8.0 * MS), judged("vm <= 10 ms", 7.8 * MS)
    skipped = ClaimResult("t.py::test_a", parse_claim("vm <= 2 * baremetal"), math.nan, (math.nan, math.nan),
                          "skipped", reason="vm: not in this run")
    res = family(a, b, skipped)
    before = [c.to_json() for c in res.claims]
    assert correct_verdicts([res], 0.95, "none") == {"confidence": 0.95, "correction": "none", "family_size": 2}
    assert [c.to_json() for c in res.claims] == before
    assert "verdict_uncorrected" not in before[0]
    correct_verdicts([res], 0.95, "holm")
    a, b, skipped = res.claims
    assert skipped.verdict == "skipped" and skipped.verdict_uncorrected is None
    assert a.family_size == 2


def test_the_reports_name_the_method():
    assert method_line({"confidence": 0.95, "correction": "holm", "family_size": 14}) == \
        "verdicts: Holm's correction over 14 claims, family-wise 95% (--virt-correction=holm)"
    assert method_line({"confidence": 0.99, "correction": "none", "family_size": 3}) == \
        "verdicts: each claim at 99%, no correction over the run's 3 claims (--virt-correction=none)"
    b = judged("vm <= 10 ms", 8.0 * MS)  # p_pass 0.0228 > 0.05/3 after 0.00135 <= 0.05/4: inconclusive
    res = family(judged("vm <= 10 ms", 7.0 * MS), b)
    correct_verdicts([res], 0.95, "holm")
    b = res.claims[1]
    data = {"baseline": "baremetal", "statistics": {"confidence": 0.95}, "claims": [b.to_json()],
            "verdict_method": {"confidence": 0.95, "correction": "holm", "family_size": 2}}
    text = markdown.render(data)
    assert "verdicts family-wise at 95% over 2 claims (Holm's correction)" in text
    assert "Holm: adjusted p=" in text


# -- end to end ---------------------------------------------------------------------

AA = aa_args("--virt-json=v.json", "--virt-markdown=v.md", rounds=4, seed=6)

# A/A with bounds no run can miss: 1000 times either way, 100 s against ~1 ms calls.
SUITE = """
import pytest

@pytest.mark.virt(claims=["control <= 1000 * baremetal", "control <= 100 s"])
def test_passes():
    pass

@pytest.mark.virt(claims=["control >= 1000 * baremetal"])
def test_fails():
    pass

def test_plain():
    pass
"""


@pytest.mark.parametrize("how", ["option", "ini"])
def test_holm_end_to_end(pytester, how):
    pytester.makepyfile(test_many=SUITE)
    args = list(AA)
    if how == "option":
        args.append("--virt-correction=holm")
    else:
        pytester.makeini("[pytest]\nvirt_correction = holm\n")
    result = pytester.runpytest_subprocess(*args, "-rA")
    out = result.stdout.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED, out + result.stderr.str()
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines([
        "*claim 'control >= 1000 * baremetal' fail: ratio *; Holm over 3 claims: adjusted p=*",
        "*verdicts: Holm's correction over 3 claims, family-wise 95% (--virt-correction=holm)",
    ])
    assert "correction=holm" in out  # the header
    data = read_json(pytester, "v.json")
    assert data["verdict_method"] == {"confidence": 0.95, "correction": "holm", "family_size": 3}
    verdicts = {c["claim"]: (c["verdict"], c["verdict_uncorrected"]) for c in data["claims"]}
    assert verdicts == {"control <= 1000 * baremetal": ("pass", "pass"), "control <= 100 s": ("pass", "pass"),
                        "control >= 1000 * baremetal": ("fail", "fail")}
    assert all(0 <= c["p_adjusted"] <= 0.05 for c in data["claims"])
    assert "verdicts family-wise at 95% over 3 claims (Holm's correction)" in (pytester.path / "v.md").read_text()


def test_without_correction_the_json_says_none(pytester):
    pytester.makepyfile(test_many=SUITE)
    result = pytester.runpytest_subprocess(*AA, "--virt-confidence=99%")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["verdicts: each claim at 99%, no correction over the run's 3 claims "
                                 "(--virt-correction=none)"])
    data = read_json(pytester, "v.json")
    assert data["verdict_method"] == {"confidence": 0.99, "correction": "none", "family_size": 3}
    assert not any("verdict_uncorrected" in c or "p_adjusted" in c for c in data["claims"])


def test_holm_reports_outcomes_after_the_last_compared_test_and_x_still_stops(pytester):
    pytester.makepyfile(test_many=SUITE)
    result = pytester.runpytest_subprocess(*AA, "--virt-correction=holm", "-x", "-v", "-p", "no:randomly")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    # test_fails is judged once it is measured (it is the last compared
    # test): -x then stops the run before test_plain.
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*test_many.py::test_passes PASSED*", "*test_many.py::test_fails FAILED*"])
    assert "test_plain" not in result.stdout.str()


def test_holm_reports_what_was_measured_when_x_stops_the_run_early(pytester):
    pytester.makepyfile(test_many="""
import pytest

@pytest.mark.virt(claims=["control <= 1000 * baremetal"])
def test_one():
    pass

def test_boom():
    assert 0

@pytest.mark.virt(claims=["control <= 1000 * baremetal"])
def test_two():
    pass
""")
    result = pytester.runpytest_subprocess(*AA, "--virt-correction=holm", "-x", "-p", "no:randomly")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=1, failed=1)
    data = read_json(pytester, "v.json")
    assert data["verdict_method"] == {"confidence": 0.95, "correction": "holm", "family_size": 1}
    assert [(c["test"].split("::")[1], c["verdict"]) for c in data["claims"]] == [("test_one", "pass")]


def test_a_bad_correction_is_a_usage_error(pytester):
    pytester.makepyfile(test_many=SUITE)
    pytester.makeini("[pytest]\nvirt_correction = bonferroni\n")
    result = pytester.runpytest_subprocess(*AA)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--virt-correction: expected one of none, holm, got 'bonferroni'*"])


def test_adaptive_sampling_can_judge_at_the_bonferroni_level():
    from pytest_virtoverhead.session.verdicts import bonferroni_confidence

    assert bonferroni_confidence(0.95, 4) == pytest.approx(0.9875)
    assert bonferroni_confidence(0.95, 0) == pytest.approx(0.95)
    res = ItemResult.from_samples("t.py::test_a", ["baremetal", "vm"], "baremetal",
                                  {"baremetal": [10 * MS] * 4, "vm": [17 * MS, 18 * MS, 19 * MS, 18 * MS]},
                                  processes=4)
    comparator = judging_comparator(0.95)
    claims = [parse_claim("vm <= 1.5 * baremetal + 5 ms"), parse_claim("vm <= 2 * baremetal")]
    verdicts = judge(res, Claims(claims), comparator.evaluate(res, claims))
    assert {c.estimate.confidence for c in verdicts} == {0.95}
    verdicts = judge(res, Claims(claims), comparator.evaluate(res, claims, confidence=0.9875))
    assert {c.estimate.confidence for c in verdicts} == {0.9875}
    assert res.claims == []  # the round runner sets no verdict
