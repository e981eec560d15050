"""Issue 25, point 6: the statistics' edge cases, against numbers computed
by hand. An absolute claim's interval never goes below zero; one round
gives no p-value (null, not 0); a confidence level keeps its digits."""

import json
import math

import pytest

from pytest_virtoverhead import markdown, stats, textfmt
from pytest_virtoverhead.claims import parse_claim
from pytest_virtoverhead.config import Settings
from pytest_virtoverhead.judging import Claims, judge
from pytest_virtoverhead.report import claim_lines, table_lines
from pytest_virtoverhead.results import ItemResult, run_document
from pytest_virtoverhead.rounds import Comparator

MS = 1e-3
T_975_1 = 12.706205  # t quantile 0.975, 1 degree of freedom (tables)


class _Pool:
    def metadata(self):
        return {}


def evaluated(claims, samples, processes, confidence=0.95):
    settings = Settings()
    settings.confidence = confidence
    res = ItemResult.from_samples("t.py::test_a", list(samples), "baremetal", samples, processes=processes)
    parsed = [parse_claim(c) for c in claims]
    res.claims = list(judge(res, Claims(parsed), Comparator(settings, _Pool(), ()).evaluate(res, parsed)))
    return res


def test_absolute_claim_interval_stays_above_zero():
    # Two processes, one round each, 1.0 and 2.6 ms: the linear t interval
    # was 1.8 +- 12.706 * 0.8 ms = [-8.36, 11.96] ms (below zero, so a
    # claim "<= 3 us" was inconclusive). On the log scale: geometric mean
    # sqrt(1.0 * 2.6) = 1.61245 ms, se of the log = ln(2.6) / 2 = 0.477756,
    # interval 1.61245 ms * 2.6 ** (+-12.706205 / 2), 2.6 ** 6.353103 = 432.88:
    # [3.7249e-6, 0.69800] s.
    res = evaluated(["control <= 3 us"], {"baremetal": [1 * MS, 1 * MS], "control": [1.0 * MS, 2.6 * MS]}, 2)
    (c,) = res.claims
    assert c.ratio == pytest.approx(1.61245 * MS, rel=1e-5)
    assert c.ci == pytest.approx((3.7249e-6, 0.69800), rel=1e-4)
    assert c.ci[0] > 0
    # Every value is ~500 times the bound: the whole interval violates it.
    assert c.verdict == "fail"


def test_time_scale_falls_back_to_linear_for_values_that_are_not_positive():
    est = stats.cluster_estimate([-1.0, 1.0, 3.0], confidence=0.95, scale=stats.TIME)
    assert est.scale == stats.LINEAR and est.ratio == 1.0


def test_one_round_has_no_p_value_and_no_interval():
    res = evaluated(["control <= 1.05 * baremetal"], {"baremetal": [10 * MS], "control": [11 * MS]}, 1)
    (c,) = res.claims
    assert c.ratio == pytest.approx(1.1)
    assert all(math.isnan(x) for x in c.ci)
    assert c.p_value is None or math.isnan(c.p_value)  # before: 0.0 ("p=0")
    assert c.verdict == "inconclusive"
    assert ", p=" not in "\n".join(claim_lines([res], False))
    doc = run_document([res], {}, seed=1, baseline="baremetal", rounds=1).to_json()
    (claim,) = json.loads(json.dumps(doc))["claims"]
    assert claim["p_value"] is None and claim["ci"] == [None, None]


def test_zero_spread_keeps_its_exact_p_value():
    est = stats.cluster_estimate([0.1, 0.1, 0.1], confidence=0.95)
    assert est.se == 0 and est.p_value == 0.0


@pytest.mark.parametrize("confidence, text", [(0.95, "95%"), (0.999, "99.9%"), (0.9999, "99.99%"),
                                              (0.9, "90%"), (0.995, "99.5%")])
def test_confidence_level_keeps_its_digits(confidence, text):
    assert textfmt.level_text(confidence) == text


def test_confidence_999_is_not_shown_as_100_percent():
    res = evaluated(["control <= 2 * baremetal"],
                    {"baremetal": [10 * MS] * 4, "control": [11 * MS, 12 * MS, 11 * MS, 12 * MS]}, 4, 0.999)
    table = "\n".join(table_lines([res], {}, confidence=0.999))
    assert "99.9% CI" in table and "100% CI" not in table
    (c,) = res.claims
    assert "99.9% CI" in c.message()
    doc = run_document([res], {}, seed=1, baseline="baremetal", rounds=4,
                       statistics={"confidence": 0.999}).to_json()
    md = markdown.render(doc)
    assert "99.9% CI" in md and "99.9% intervals" in md and "100%" not in md
