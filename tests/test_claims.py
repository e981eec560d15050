"""The claim grammar and the three-valued verdicts, on hand-computed cases."""

import math

import pytest

from pytest_virtoverhead.claims import FAIL, INCONCLUSIVE, PASS, ClaimError, check_envs, parse_claim


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
