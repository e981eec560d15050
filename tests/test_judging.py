"""The judging step: a test's measurements and plan into verdicts, and the
run's correction into new ones; neither changes a verdict in place."""

import dataclasses
import datetime

import pytest

from pytest_virtoverhead.judge.claims import parse_claim
from pytest_virtoverhead.judge.verdict import FAIL, PASS, SKIPPED
from pytest_virtoverhead.judge.waivers import Waiver
from pytest_virtoverhead.results import ItemResult
from pytest_virtoverhead.session.config import ItemPlan
from pytest_virtoverhead.session.judging import Claims, Context, correct, judge

MS = 1e-3
CTX = Context(0.95, {"vm": {"accel": "kvm"}}, frozenset({"baremetal", "vm"}), today=datetime.date(2027, 1, 1))


def measured(evaluated=True):
    res = ItemResult.from_samples("t.py::test_a", ["baremetal", "vm"], "baremetal",
                                  {"baremetal": [10 * MS, 11 * MS, 10 * MS, 11 * MS],
                                   "vm": [30 * MS, 33 * MS, 31 * MS, 32 * MS]}, processes=4)
    res.evaluated = evaluated
    return res


def test_judge_settles_sources_waivers_and_claims_set_aside():
    fails, passes = parse_claim("vm <= 2 * baremetal"), parse_claim("vm <= 5 * baremetal")
    aside = parse_claim("container <= 2 * baremetal")
    waiver = Waiver(parse_claim("vm <= 2*baremetal"), datetime.date(2027, 1, 31), "known", "marker of t.py::test_a")
    plan = ItemPlan(claims=[fails, passes], envs=["baremetal", "vm"], rounds=4,
                    skipped_claims=[(aside, "container: not in this run")], waivers=[waiver],
                    sources={passes: ("virt_claims (ini) entry 1", "io")})
    res = measured()
    verdicts = judge(res, plan, CTX)
    assert [c.verdict for c in verdicts] == [FAIL, PASS, SKIPPED]
    assert verdicts[0].waived and verdicts[0].waiver is waiver and verdicts[0].accel == "kvm"
    assert (verdicts[1].source, verdicts[1].group, verdicts[1].waiver) == ("virt_claims (ini) entry 1", "io", None)
    assert verdicts[2].reason == "container: not in this run"
    assert res.claims == []  # judging returns verdicts; it sets none
    with pytest.raises(dataclasses.FrozenInstanceError):
        verdicts[0].verdict = PASS  # type: ignore[misc]
    expired = judge(res, plan, dataclasses.replace(CTX, today=datetime.date(2027, 2, 1)))
    assert expired[0].waiver_expired.startswith("waiver of claim 'vm <= 2*baremetal' expired on 2027-01-31")


def test_a_test_not_measured_to_the_end_has_only_the_claims_set_aside():
    aside = parse_claim("container <= 2 * baremetal")
    plan = Claims([parse_claim("vm <= 2 * baremetal")], skipped_claims=[(aside, "container: not in this run")])
    assert [c.claim for c in judge(measured(evaluated=False), plan, CTX)] == [aside]
    missing = judge(measured(), Claims([parse_claim("ssh <= 2 * baremetal")]), CTX)
    assert [(c.verdict, c.reason) for c in missing] == [(SKIPPED, "ssh: not in this run")]


def test_correct_returns_new_verdicts_and_leaves_the_old_ones():
    res = measured()
    res.claims = list(judge(res, Claims([parse_claim("vm <= 2 * baremetal"), parse_claim("vm <= 5 * baremetal")]),
                            CTX))
    before = list(res.claims)
    method, (after,) = correct([res], 0.95, "holm")
    assert method == {"confidence": 0.95, "correction": "holm", "family_size": 2}
    assert res.claims == before and all(c.verdict_uncorrected is None for c in before)
    assert [c.verdict_uncorrected for c in after] == [c.verdict for c in before]
    assert all(c.family_size == 2 for c in after)
    assert correct([res], 0.95, "none") == ({"confidence": 0.95, "correction": "none", "family_size": 2},
                                            [tuple(before)])
