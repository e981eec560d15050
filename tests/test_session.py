"""How a compared test ends, decided from hand-made results."""

from pytest_virtoverhead.judge.claims import parse_claim
from pytest_virtoverhead.results import ClaimResult, ItemResult
from pytest_virtoverhead.session.verdicts import outcome_of


def result_with(verdict=None, **fields):
    res = ItemResult(nodeid="t.py::a", envs=["baremetal", "vm"], baseline="baremetal", **fields)
    if verdict:
        res.claims.append(ClaimResult("t.py::a", parse_claim("vm <= 2 * baremetal"), 3.0, (2.8, 3.2), verdict))
    return res


def decide(res, strict=False, gate=True, missing=()):
    return outcome_of(res, strict=strict, gate=gate, required_missing=list(missing))


def test_claims_decide_the_outcome():
    assert decide(result_with("pass")).outcome == "passed"
    failed = decide(result_with("fail"))
    assert failed.outcome == "failed"
    assert failed.text == ("claim 'vm <= 2 * baremetal' fail: ratio 3.000, 95% CI [2.800, 3.200] "
                           "(needs ratio <= 2)")
    assert decide(result_with("inconclusive")).outcome == "passed"
    assert decide(result_with("inconclusive"), strict=True).outcome == "failed"


def test_findings_do_not_gate():
    out = decide(result_with("fail"), gate=False)
    assert out.outcome == "passed"
    assert out.sections[0][0] == "virtoverhead findings (not gating)"


def test_failures_skips_and_requirements_come_first():
    assert decide(result_with("pass", failure=("vm", "boom"))).text == "boom"
    assert decide(result_with(skipped=("vm", "skipped in vm: no\nmore"))).text == "skipped in vm: no"
    out = decide(result_with("pass"), missing=["vm: no libvirt"])
    assert out.outcome == "failed" and out.text.endswith("vm: no libvirt")


def test_nothing_to_compare_with_skips():
    out = decide(result_with(unavailable={"vm": "no guest kernel\ndetails"}))
    assert out.outcome == "skipped"
    assert out.text == "no environment to compare with: vm: no guest kernel"
    assert out.sections == [("virtoverhead", "vm: unavailable: no guest kernel")]
