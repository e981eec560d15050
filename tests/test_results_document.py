"""The run document (results/): built from an ItemResult, written, read
back the same; the version check; the verdict enum; NaN in one place."""

import json
import math

import pytest

from pytest_virtoverhead.judge.claims import parse_claim
from pytest_virtoverhead.judge.verdict import FAIL, INCONCLUSIVE, PASS, SKIPPED, Verdict
from pytest_virtoverhead.results import (
    JSON_VERSION,
    READ_VERSIONS,
    ClaimResult,
    DocumentError,
    ItemResult,
    RunDocument,
    empty_document,
    json_safe,
    record_of,
    run_document,
)
from pytest_virtoverhead.session.planning import deciding_bound


def _result():
    res = ItemResult.from_samples("t.py::test_a", ["baremetal", "vm"], "baremetal",
                                  {"baremetal": [1.0, 2.0, 3.0], "vm": [2.0, 4.0, 6.5]},
                                  source={"baremetal": "call", "vm": "call"},
                                  ratios={"vm": (2.0, (1.5, math.inf))}, calls={"vm": 3})
    res.processes = {"baremetal": {1: 11}, "vm": {1: 12}}
    res.claims.append(ClaimResult(res.nodeid, parse_claim("vm <= 3 * baremetal"), 2.0, (1.5, math.nan), PASS,
                                  p_value=0.01))
    return res


def test_written_and_read_back_the_same(tmp_path):
    doc = run_document([_result()], {"vm": {"kind": "vm"}}, seed=7, baseline="baremetal", rounds=3,
                       session="abc", aborted=False, verdict_method={"confidence": 0.95, "correction": "none",
                                                                     "family_size": 1})
    path = str(tmp_path / "run.json")
    doc.dump(path)
    data = json.loads(open(path).read())
    assert list(data)[:3] == ["version", "written", "seed"] and data["version"] == JSON_VERSION
    assert list(data).index("tests") < list(data).index("session") < list(data).index("verdict_method")
    again = RunDocument.load(path)
    assert again.to_json() == data
    (test,) = again.tests
    assert test.nodeid == "t.py::test_a" and test.outcome == "measured" and test.rounds == 3
    vm = test.env("vm")
    assert vm.samples == [2.0, 4.0, 6.5] and vm.ratio == 2.0 and vm.ci == (1.5, None) and vm.source == "call"
    (claim,) = again.claims
    assert type(data["claims"][0]["verdict"]) is str and claim.verdict is Verdict.PASS and claim.ci == (1.5, None) and claim.env == "vm"
    assert (again.seed, again.baseline, again.session, again.verdict_method["family_size"]) == (7, "baremetal",
                                                                                               "abc", 1)


def test_record_of_a_test_is_what_the_document_holds():
    res = _result()
    doc = run_document([res], {}, seed=1, baseline="baremetal", rounds=3)
    assert doc.tests[0].data == record_of(res).data
    assert [e.env for e in doc.results] == ["baremetal", "vm"]


def test_empty_document_has_the_lists():
    data = empty_document(seed=1, baseline="baremetal", rounds=3, statistics={}, verdict_method={},
                          aborted=True, exitstatus=2).to_json()
    assert (data["results"], data["claims"], data["tests"], data["aborted"]) == ([], [], [], True)
    assert RunDocument.from_json(data).aborted


@pytest.mark.parametrize("version", [0, 4, 9, None, "2", True])
def test_version_not_read_names_found_and_read(version):
    with pytest.raises(DocumentError) as info:
        RunDocument.from_json({"version": version, "results": []}, "old.json")
    msg = str(info.value)
    assert f"version {version!r}" in msg and "old.json" in msg
    assert f"reads version {', '.join(map(str, READ_VERSIONS))} and writes {JSON_VERSION}" in msg


def test_version_1_is_read_without_tests():
    doc = RunDocument.from_json({"version": 1, "environments": {}, "results": [
        {"test": "t.py::a", "env": "vm", "samples": [1.0, 2.0], "median": 1.5}], "claims": [
        {"test": "t.py::a", "claim": "vm <= 2 * baremetal", "env": "vm", "ratio": 1.2, "ci": [1.0, 1.4],
         "verdict": "pass"}]})
    (test,) = doc.tests
    assert test.data is None and test.outcome == "measured" and test.env("vm").median == 1.5
    assert doc.to_json()["tests"] == []


@pytest.mark.parametrize("data, message", [
    ({"version": 2, "results": {}}, "'results' must be a list, got dict"),
    ({"version": 2, "results": [7]}, "results[0]: expected an object, got int"),
    ({"version": 2, "results": [{"test": "t", "env": ""}]}, "results[0]: 'env' must be a non-empty string"),
    ({"version": 2, "results": [{"test": "t", "env": "vm", "samples": ["x"]}]}, "'samples' must be a list"),
    ({"version": 2, "claims": [{"test": "t", "claim": "c", "verdict": "maybe"}]}, "got 'maybe'"),
    ({"version": 2, "environments": []}, "'environments' must be an object"),
])
def test_malformed_documents_say_where(data, message):
    with pytest.raises(DocumentError, match=message.replace("[", r"\[").replace("]", r"\]")):
        RunDocument.from_json(data)


def test_json_safe():
    assert json_safe({1: (math.nan, [math.inf, -math.inf, 1.5]), "a": None}) == {"1": [None, [None, None, 1.5]],
                                                                                 "a": None}
    assert json_safe(math.nan) is None and json_safe(2) == 2 and json_safe("x") == "x"


def test_verdict_is_its_word():
    assert [PASS, FAIL, INCONCLUSIVE, SKIPPED] == ["pass", "fail", "inconclusive", "skipped"]
    assert {"pass": 1}[PASS] == 1 and {FAIL: 1}["fail"] == 1  # a verdict read from a file looks up the same
    assert json.dumps([INCONCLUSIVE]) == '["inconclusive"]'
    assert f"{FAIL:<6}|{SKIPPED}" == "fail  |skipped" and Verdict("pass") is PASS


def test_deciding_bound_inside_the_interval_or_nearest():
    claim = parse_claim("vm ~= baremetal +- 10%")  # bounds 0.9 and 1.1
    assert deciding_bound(claim, 1.05, (1.0, 1.2)) == pytest.approx(1.1)
    assert deciding_bound(claim, 1.05, (1.0, 1.08)) is None  # no bound inside: nothing keeps it open
    assert deciding_bound(claim, 1.05) == pytest.approx(1.1)  # without an interval: the nearest
    assert deciding_bound(claim, 0.0) is None
    time_claim = parse_claim("vm <= baremetal + 2 ms")
    assert deciding_bound(time_claim, 0.0019, (0.001, 0.003)) == pytest.approx(0.002)
