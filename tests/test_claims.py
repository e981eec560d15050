"""The claim grammar and the three-valued verdicts, on hand-computed cases."""

import math

import pytest

from pytest_virtoverhead.judge.claims import ClaimError, check_envs, parse_claim
from pytest_virtoverhead.judge.verdict import FAIL, INCONCLUSIVE, PASS


@pytest.mark.parametrize("text, env, base, lower, upper", [
    ("container <= 1.05 * baremetal", "container", "baremetal", None, 1.05),
    ("vm <= 2 * baremetal", "vm", "baremetal", None, 2.0),
    ("vm >= 1.5 * baremetal", "vm", "baremetal", 1.5, None),
    ("vm <= baremetal * 2", "vm", "baremetal", None, 2.0),
    ("container <= baremetal", "container", "baremetal", None, 1.0),
    ("container <= baremetal + 5%", "container", "baremetal", None, 1.05),
    ("vm >= baremetal - 10%", "vm", "baremetal", 0.9, None),
    ("container ~= baremetal +- 3%", "container", "baremetal", 0.97, 1.03),
    ("container ~= baremetal ± 3%", "container", "baremetal", 0.97, 1.03),
    ("crun ~= 2 * runc +- 10%", "crun", "runc", 1.8, 2.2),
    ("  vm<=2*baremetal  ", "vm", "baremetal", None, 2.0),
    ("vm <= 1e1 * baremetal", "vm", "baremetal", None, 10.0),
])
def test_parse_forms(text, env, base, lower, upper):
    claim = parse_claim(text)
    assert (claim.env, claim.baseline) == (env, base)
    assert claim.lower == pytest.approx(lower) if lower is not None else claim.lower is None
    assert claim.upper == pytest.approx(upper) if upper is not None else claim.upper is None


@pytest.mark.parametrize("text, column, words", [
    ("container <= 1.05 x baremetal", 19, "expected '*' after the factor"),
    ("container = baremetal", 11, "unexpected character '='"),
    ("container <= ", 13, "expected a baseline environment name"),
    ("", 1, "empty claim"),
    ("<= baremetal", 1, "expected an environment name"),
    ("container baremetal", 11, "expected a comparison"),
    ("container ~= baremetal", 23, "'~=' needs a tolerance"),
    ("container <= baremetal +- 3%", 24, "'+-' tolerances go with '~='"),
    ("container <= 2 * baremetal + 5%", 28, "either a factor or a percentage"),
    ("container <= baremetal + 5", 27, "expected '%'"),
    ("container <= 0 * baremetal", 14, "factor must be positive"),
    ("vm >= baremetal - 100%", 19, "under 100%"),
    ("vm <= 2 * baremetal extra", 21, "unexpected 'extra'"),
    ("vm <= 2 * vm", 11, "compares 'vm' with itself"),
    ("vm <= 2 * bare$metal", 15, "unexpected character '$'"),
])
def test_malformed_claims_name_the_column(text, column, words):
    with pytest.raises(ClaimError) as info:
        parse_claim(text)
    err = info.value
    assert err.column == column
    assert words in str(err)
    lines = str(err).splitlines()
    # The caret sits under the named column of the echoed claim.
    assert lines[2].index("^") - 4 == column - 1


def test_unknown_environment_lists_the_known_ones():
    claim = parse_claim("container <= 1.05 * bm")
    with pytest.raises(ClaimError) as info:
        check_envs(claim, ["baremetal", "container"])
    assert info.value.column == 21
    assert "unknown environment 'bm'" in str(info.value)
    assert "baremetal, container" in str(info.value)


@pytest.mark.parametrize("text, ratio, ci, verdict", [
    # upper bound 1.05
    ("c <= 1.05 * b", 1.00, (0.98, 1.02), PASS),
    ("c <= 1.05 * b", 1.04, (1.02, 1.06), INCONCLUSIVE),
    ("c <= 1.05 * b", 1.10, (1.06, 1.12), FAIL),
    ("c <= 1.05 * b", 1.05, (1.05, 1.05), PASS),   # on the bound: satisfied
    # lower bound 1.5
    ("c >= 1.5 * b", 1.00, (0.84, 1.16), FAIL),
    ("c >= 1.5 * b", 1.60, (1.40, 1.70), INCONCLUSIVE),
    ("c >= 1.5 * b", 2.00, (1.90, 2.10), PASS),
    # two-sided 0.97 .. 1.03
    ("c ~= b +- 3%", 1.00, (0.98, 1.02), PASS),
    ("c ~= b +- 3%", 1.02, (0.99, 1.05), INCONCLUSIVE),
    ("c ~= b +- 3%", 1.00, (0.90, 1.10), INCONCLUSIVE),  # straddles both bounds
    ("c ~= b +- 3%", 1.10, (1.05, 1.15), FAIL),
    ("c ~= b +- 3%", 0.90, (0.85, 0.95), FAIL),
    # strict comparisons: touching the bound is not satisfying it
    ("c < b", 1.0, (1.0, 1.0), FAIL),
    ("c > b", 1.0, (1.0, 1.0), FAIL),
    ("c < b", 0.9, (0.8, 0.99), PASS),
    # an interval given upside down is read the right way up
    ("c <= 2 * b", 1.5, (1.6, 1.4), PASS),
    # no interval: nothing can be concluded
    ("c <= 2 * b", 1.5, (math.nan, math.nan), INCONCLUSIVE),
])
def test_verdicts(text, ratio, ci, verdict):
    assert parse_claim(text).verdict(ratio, ci) == verdict


def test_describe_bounds():
    assert parse_claim("c ~= b +- 10%").describe_bounds() == "0.9 <= ratio <= 1.1"
    assert parse_claim("c <= 2 * b").describe_bounds() == "ratio <= 2"
    assert parse_claim("c >= b - 5%").describe_bounds() == "ratio >= 0.95"


# -- fixed-cost and absolute claims ---------------------------------------------


@pytest.mark.parametrize("text, kind, base, factor, lower, upper", [
    ("vm <= 1.2 * baremetal + 3 ms", "fixed", "baremetal", 1.2, None, 0.003),
    ("vm <= baremetal * 1.2 + 300 us", "fixed", "baremetal", 1.2, None, 0.0003),
    ("vm <= 1.2*baremetal+3ms", "fixed", "baremetal", 1.2, None, 0.003),
    ("vm <= baremetal + 2 s", "fixed", "baremetal", 1.0, None, 2.0),
    ("vm >= 2 * baremetal - 1 ms", "fixed", "baremetal", 2.0, -0.001, None),
    ("vm > baremetal + 5 µs", "fixed", "baremetal", 1.0, 5e-6, None),      # micro sign
    ("vm > baremetal + 5 μs", "fixed", "baremetal", 1.0, 5e-6, None),      # Greek mu
    ("container ~= baremetal +- 2 ms", "fixed", "baremetal", 1.0, -0.002, 0.002),
    ("container ~= 2 * baremetal +- 1 ms", "fixed", "baremetal", 2.0, -0.001, 0.001),
    ("container <= 50 ms", "absolute", None, 1.0, None, 0.05),
    ("container < 1.5 s", "absolute", None, 1.0, None, 1.5),
    ("baremetal >= 250 us", "absolute", None, 1.0, 0.00025, None),
    ("container ~= 20 ms +- 10%", "absolute", None, 1.0, 0.018, 0.022),
    ("container ~= 20 ms +- 1 ms", "absolute", None, 1.0, 0.019, 0.021),
    # the ratio forms are unchanged
    ("container <= baremetal + 5%", "ratio", "baremetal", 1.0, None, 1.05),
    ("crun ~= 2 * runc +- 10%", "ratio", "runc", 2.0, 1.8, 2.2),
])
def test_parse_time_forms(text, kind, base, factor, lower, upper):
    claim = parse_claim(text)
    assert (claim.kind, claim.baseline, claim.factor) == (kind, base, pytest.approx(factor))
    assert claim.unit == ("ratio" if kind == "ratio" else "s")
    assert claim.envs == ((claim.env,) if base is None else (claim.env, base))
    assert claim.lower == pytest.approx(lower) if lower is not None else claim.lower is None
    assert claim.upper == pytest.approx(upper) if upper is not None else claim.upper is None


def test_time_claims_describe_their_quantity():
    assert parse_claim("vm <= 1.2 * baremetal + 3 ms").describe_bounds() == "vm - 1.2 * baremetal <= 3 ms"
    assert parse_claim("vm >= baremetal - 500 us").describe_bounds() == "vm - baremetal >= -500 us"
    assert parse_claim("c ~= b +- 2 ms").describe_bounds() == "-2 ms <= c - b <= 2 ms"
    assert parse_claim("container <= 50 ms").describe_bounds() == "container <= 50 ms"
    assert parse_claim("container > 2 s").describe_bounds() == "container > 2 s"
    assert parse_claim("container <= 50 ms").quantity == "container"
    assert parse_claim("vm <= 2 * b + 1 s").quantity == "vm - 2 * b"


@pytest.mark.parametrize("text, column, words", [
    ("container <= 50", 16, "expected a time unit (us (or µs), ms or s) after 50"),
    ("container <= 5 min", 16, "unknown unit 'min'"),
    ("container <= 5 ns", 16, "unknown unit 'ns'; use us (or µs), ms or s"),
    ("container <= 5 µsec", 16, "unknown unit 'µsec'"),
    ("vm <= baremetal + 3", 20, "expected '%' or a time unit"),
    ("vm <= baremetal + 3 min", 21, "unknown unit 'min'"),
    ("vm <= 1.2 * baremetal + 3", 26, "expected '%' or a time unit"),
    ("vm ~= baremetal + 3 ms", 17, "a fixed cost does not go with '~='"),
    ("vm ~= baremetal +- 3", 21, "expected '%' or a time unit (us (or µs), ms or s) after the tolerance"),
    ("vm <= baremetal + 5% + 3 ms", 22, "a percentage and a fixed cost do not combine"),
    ("vm <= 2 * baremetal + 5%", 21, "either a factor or a percentage"),
    ("vm <= 0 ms", 7, "a time bound must be positive"),
    ("vm <= 5 ms +- 1 ms", 12, "'+-' tolerances go with '~='"),
    ("vm <= 5 ms * baremetal", 12, "a time does not multiply an environment"),
    ("vm ~= 5 ms", 11, "'~=' needs a tolerance: expected '+- P%' or '+- TIME'"),
    ("vm <= 5 ms extra", 12, "unexpected 'extra'"),
    ("vm <= 2 baremetal", 9, "expected '*' after the factor"),
    ("vm <= baremetal + 3 ms %", 24, "unexpected '%'"),
])
def test_malformed_time_claims_name_the_column(text, column, words):
    with pytest.raises(ClaimError) as info:
        parse_claim(text)
    err = info.value
    assert (err.column, words in str(err)) == (column, True), str(err)
    assert str(err).splitlines()[2].index("^") - 4 == column - 1


def test_absolute_claim_has_no_baseline_to_check():
    claim = parse_claim("container <= 50 ms")
    assert check_envs(claim, ["baremetal", "container"]) == []
    assert check_envs(claim, ["baremetal"], {"container"}) == ["container"]
    with pytest.raises(ClaimError) as info:
        check_envs(parse_claim("nosuch <= 50 ms"), ["baremetal"])
    assert info.value.column == 1


@pytest.mark.parametrize("text, value, ci, verdict", [
    # fixed cost: env - 1.2 * base <= 3 ms, the interval in seconds
    ("vm <= 1.2 * b + 3 ms", 0.002, (0.0015, 0.0025), PASS),
    ("vm <= 1.2 * b + 3 ms", 0.003, (0.0025, 0.0035), INCONCLUSIVE),
    ("vm <= 1.2 * b + 3 ms", 0.004, (0.0035, 0.0045), FAIL),
    ("vm >= b - 1 ms", -0.0005, (-0.0008, -0.0002), PASS),   # negative differences are fine
    ("vm >= b - 1 ms", -0.002, (-0.003, -0.0015), FAIL),
    ("c ~= b +- 2 ms", 0.0, (-0.001, 0.001), PASS),
    ("c ~= b +- 2 ms", 0.0015, (0.001, 0.0025), INCONCLUSIVE),
    # absolute: the environment's own time
    ("c <= 50 ms", 0.030, (0.028, 0.032), PASS),
    ("c <= 50 ms", 0.060, (0.055, 0.065), FAIL),
    ("c < 50 ms", 0.050, (0.050, 0.050), FAIL),
    ("c ~= 20 ms +- 10%", 0.020, (0.019, 0.021), PASS),
    ("c ~= 20 ms +- 10%", 0.021, (0.0205, 0.0225), INCONCLUSIVE),
])
def test_time_verdicts(text, value, ci, verdict):
    assert parse_claim(text).verdict(value, ci) == verdict


@pytest.mark.parametrize("claim, words, column", [
    ("container ~= baremetal +- 0%", "a tolerance of 0 can never be met", 27),
    ("container ~= 20 ms +- 0 ms", "a tolerance of 0 can never be met", 23),
    ("container ~= 20 ms +- 30 ms", "a tolerance as large as the time itself leaves no lower bound; write "
                                    "'container <= 50 ms' instead", 23),
    ("container ~= 20 ms +- 20 ms", "leaves no lower bound", 23),
])
def test_claims_that_can_never_pass_are_refused_with_the_column(claim, words, column):
    with pytest.raises(ClaimError) as info:
        parse_claim(claim)
    assert words in str(info.value) and f"column {column}" in str(info.value)


def test_tolerances_that_can_pass_still_parse():
    assert parse_claim("container ~= 20 ms +- 5 ms").describe_bounds() == "15 ms <= container <= 25 ms"
    assert parse_claim("container ~= baremetal +- 2 ms").lower == pytest.approx(-0.002)
