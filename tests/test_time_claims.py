"""Fixed-cost (``vm <= 1.2 * baremetal + 3 ms``) and absolute
(``container <= 50 ms``) claims: their estimate is a time in seconds, on
the same interval logic as a ratio's, and every report says so."""

import json
import math

import pytest
from virthelp import aa_args, evaluated, read_json

from pytest_virtoverhead.judge.verdict import FAIL, INCONCLUSIVE, PASS
from pytest_virtoverhead.render import markdown
from pytest_virtoverhead.render.report import claim_lines
from pytest_virtoverhead.results import run_document

MS = 1e-3


# Four processes, one round each: the estimate is the plain mean of the
# per-round values, its standard error s / sqrt(4) with 3 degrees of
# freedom (t = 3.182446). vm - 1.5 * baremetal = [2, 3, 4, 3] ms: mean 3 ms,
# s^2 = (1 + 0 + 1 + 0) / 3 ms^2, se = 0.408248 ms, half-width 1.299204 ms.
BASE = [10 * MS, 10 * MS, 10 * MS, 10 * MS]
VM = [17 * MS, 18 * MS, 19 * MS, 18 * MS]
HALF = 3.182446 * math.sqrt(2 / 3 / 4) * MS


@pytest.mark.parametrize("claim, verdict", [
    ("vm <= 1.5 * baremetal + 5 ms", PASS),
    ("vm <= 1.5 * baremetal + 4 ms", INCONCLUSIVE),
    ("vm <= 1.5 * baremetal + 1 ms", FAIL),
    ("vm >= 1.5 * baremetal + 1 ms", PASS),
    ("vm ~= 1.5 * baremetal +- 2 ms", INCONCLUSIVE),
])
def test_fixed_cost_estimate_is_the_paired_difference_in_seconds(claim, verdict):
    res = evaluated([claim], {"baremetal": BASE, "vm": VM})
    (c,) = res.claims
    assert c.ratio == pytest.approx(3 * MS)
    assert c.ci == pytest.approx((3 * MS - HALF, 3 * MS + HALF), rel=1e-5)
    assert c.verdict == verdict
    assert c.estimate.scale == "linear" and c.estimate.n_clusters == 4
    # The p-value stays that of "the ratio is 1" (vm is 1.8x here).
    assert c.p_value == pytest.approx(res.estimates["vm"].p_value)
    # The run's ratio column is untouched: vm / baremetal, still a ratio.
    assert res.ratios["vm"][0] == pytest.approx(math.exp(sum(math.log(v / 10) for v in (17, 18, 19, 18)) / 4))


@pytest.mark.parametrize("claim, verdict", [
    ("baremetal <= 13 ms", PASS),
    ("baremetal <= 12 ms", INCONCLUSIVE),
    ("baremetal <= 9 ms", FAIL),
    ("vm <= 20 ms", PASS),
    ("vm ~= 18 ms +- 10%", PASS),
])
def test_absolute_estimate_is_the_environments_own_values(claim, verdict):
    res = evaluated([claim], {"baremetal": [10 * MS, 11 * MS, 12 * MS, 11 * MS], "vm": VM})
    (c,) = res.claims
    # On the log scale (an interval of times never goes below 0):
    # baremetal's logs (ms) 2.302585, 2.397895, 2.484907, 2.397895: mean
    # 2.395821 (geometric mean 10.977 ms), s = 0.074472, se = s / 2, half
    # width 3.182446 * 0.037236 = 0.118501: [9.750, 12.358] ms. vm's: mean
    # 2.889599 (17.986 ms), s = 0.045417, half width 0.072269: [16.732,
    # 19.334] ms.
    mid, lo, hi = ((10.977, 9.750, 12.358) if claim.startswith("baremetal") else (17.986, 16.732, 19.334))
    assert c.ratio == pytest.approx(mid * MS, abs=0.001 * MS)
    assert c.ci == pytest.approx((lo * MS, hi * MS), abs=0.001 * MS)
    assert c.estimate.scale == "log"
    assert c.verdict == verdict
    assert c.p_value is None  # no baseline: no "ratio is 1"


def test_inconclusive_time_claim_says_what_would_decide_it_in_seconds():
    res = evaluated(["vm <= 1.5 * baremetal + 4 ms"], {"baremetal": BASE, "vm": VM})
    (c,) = res.claims
    text = c.message()
    assert text.startswith("claim 'vm <= 1.5 * baremetal + 4 ms' inconclusive: vm - 1.5 * baremetal 3 ms, "
                           "95% CI [1.701 ms, 4.299 ms] (needs vm - 1.5 * baremetal <= 4 ms)")
    assert "the data resolve +-1.299 ms" in text
    # n * (z * se / gap)^2 with gap = 1 ms: 4 * (1.959964 * 0.408248)^2 = 2.56
    assert c.rounds_needed == pytest.approx(4 * (1.959964 * math.sqrt(2 / 3 / 4)) ** 2, rel=1e-5)


def test_terminal_json_and_markdown_show_seconds():
    res = evaluated(["vm <= 1.5 * baremetal + 1 ms", "vm <= 20 ms", "vm <= 2 * baremetal"],
                    {"baremetal": BASE, "vm": VM})
    lines = claim_lines([res], strict=False)
    assert lines[0] == ("FAIL          t.py::test_a: vm <= 1.5 * baremetal + 1 ms  vm - 1.5 * baremetal 3 ms "
                        f"[1.701 ms, 4.299 ms], p={res.claims[0].p_value:.3g}")
    assert lines[1] == "pass          t.py::test_a: vm <= 20 ms  vm 17.99 ms [16.73 ms, 19.33 ms]"  # log scale
    assert lines[2].startswith("pass          t.py::test_a: vm <= 2 * baremetal  ratio 1.799 [1.673, 1.933], p=")
    data = json.loads(json.dumps(run_document([res], {}, seed=1, baseline="baremetal", rounds=4).to_json()))
    fixed, absolute, ratio = data["claims"]
    assert (fixed["kind"], fixed["unit"], fixed["quantity"]) == ("fixed", "s", "vm - 1.5 * baremetal")
    assert fixed["ratio"] == pytest.approx(0.003) and fixed["bounds"] == [None, 0.001]
    assert fixed["resolution"] == pytest.approx(HALF, rel=1e-5)
    assert (absolute["kind"], absolute["unit"], absolute["baseline"], absolute["p_value"]) == \
        ("absolute", "s", None, None)
    assert (ratio["kind"], ratio["unit"], ratio["quantity"]) == ("ratio", "ratio", "ratio")
    md = markdown.render(data)
    assert "| estimate | 95% CI |" in md
    assert "| 3 ms | [1.701 ms, 4.299 ms] |" in md
    assert "| 1.799 | [1.673, 1.933] |" in md


def test_html_report_shows_time_claims_in_seconds():
    pytest.importorskip("matplotlib")
    from pytest_virtoverhead.render.htmlreport import render_html

    res = evaluated(["vm <= 1.5 * baremetal + 1 ms", "vm <= 20 ms"], {"baremetal": BASE, "vm": VM})
    page = render_html(run_document([res], {}, seed=1, baseline="baremetal", rounds=4).to_json())
    assert "<code>vm &lt;= 1.5 * baremetal + 1 ms</code>: vm - 1.5 * baremetal 3 ms [1.701 ms, 4.299 ms]" in page
    assert "<code>vm &lt;= 20 ms</code>: vm 17.99 ms [16.73 ms, 19.33 ms]" in page


AA = aa_args("--virt-json=v.json", rounds=3, seed=4)

SUITE = """
import time
import pytest

@pytest.mark.virt(claims=["control <= 1.2 * baremetal + 50 ms", "control ~= baremetal +- 50 ms",
                          "control <= 5 s", "baremetal < 1 s"])
def test_within():
    time.sleep(0.002)

@pytest.mark.virt(claims=["control >= baremetal + 1 s"])
def test_fixed_cost_fails():
    time.sleep(0.002)

@pytest.mark.virt(claims=["baremetal >= 1 s"])
def test_absolute_fails():
    time.sleep(0.002)
"""


def test_time_claims_end_to_end(pytester):
    pytester.makepyfile(test_times=SUITE)
    result = pytester.runpytest_subprocess(*AA, "--virt-report=r.html")
    out = result.stdout.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED, out + result.stderr.str()
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines([
        "*claim 'control >= baremetal + 1 s' fail: control - baremetal *s, 95% CI [[]*s, *s] "
        "(needs control - baremetal >= 1 s)*",
        "*claim 'baremetal >= 1 s' fail: baremetal * ms, 95% CI [[]* ms, * ms] (needs baremetal >= 1 s)*",
    ])
    result.stdout.fnmatch_lines([
        "claims:",
        "  pass * test_times.py::test_within: control <= 1.2 * baremetal + 50 ms  control - 1.2 * baremetal -* "
        "[[]*s, *s], p=*",
        "  pass * test_times.py::test_within: control ~= baremetal +- 50 ms  control - baremetal *s [[]*s, *s], p=*",
        "  pass * test_times.py::test_within: control <= 5 s  control * ms [[]* ms, * ms]",
        "  pass * test_times.py::test_within: baremetal < 1 s  baremetal * ms [[]* ms, * ms]",
        "  FAIL * test_times.py::test_fixed_cost_fails: control >= baremetal + 1 s  control - baremetal *",
        "  FAIL * test_times.py::test_absolute_fails: baremetal >= 1 s  baremetal * ms [[]* ms, * ms]",
    ])
    data = read_json(pytester, "v.json")
    by_claim = {c["claim"]: c for c in data["claims"]}
    fixed = by_claim["control <= 1.2 * baremetal + 50 ms"]
    assert (fixed["kind"], fixed["unit"], fixed["verdict"]) == ("fixed", "s", "pass")
    assert fixed["bounds"] == [None, pytest.approx(0.05)]
    # 2 ms calls: control - 1.2 * baremetal is about -0.4 ms, far from any ratio near 1.
    assert -0.01 < fixed["ratio"] < 0.005 and fixed["ci"][0] <= fixed["ratio"] <= fixed["ci"][1]
    absolute = by_claim["baremetal >= 1 s"]
    assert (absolute["kind"], absolute["unit"], absolute["baseline"], absolute["verdict"]) == \
        ("absolute", "s", None, "fail")
    assert 0.001 < absolute["ratio"] < 0.5
    assert by_claim["control ~= baremetal +- 50 ms"]["bounds"] == [pytest.approx(-0.05), pytest.approx(0.05)]
    page = (pytester.path / "r.html").read_text()
    assert "<code>control &lt;= 5 s</code>: control " in page


def test_malformed_time_claim_is_a_usage_error_with_the_column(pytester):
    pytester.makepyfile(test_bad="""
import pytest

@pytest.mark.virt(claims=["control <= 5 min"])
def test_a():
    pass
""")
    result = pytester.runpytest_subprocess(*AA)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([
        "*test_bad.py::test_a: invalid claim at column 14: unknown unit 'min'; use us (or µs), ms or s",
        "    control <= 5 min",
        "                 ^",
    ])
