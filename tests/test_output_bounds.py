"""A test that prints more than the protocol's frame
limit (64 MiB) neither stalls its worker nor loses its failure: the
captured output crosses cut to a bound, and the report says so."""

import json
import time

import pytest
from virthelp import aa_args, read_json

from pytest_virtoverhead.wire import protocol, testreports

SUITE = """
import sys
import pytest

@pytest.mark.virt(claims=["control <= 100 * baremetal"])
def test_prints_a_lot_and_passes():
    sys.stdout.write("x" * (70 << 20))

@pytest.mark.virt(claims=["control <= 100 * baremetal"])
def test_prints_a_lot_and_fails():
    sys.stdout.write("head-of-output " + "y" * (70 << 20) + " tail-of-output")
    assert 1 + 1 == 3, "the assertion survives"
"""


def test_huge_captured_output_is_cut_and_said_not_a_stall(pytester):
    pytester.makepyfile(test_big=SUITE)
    started = time.monotonic()
    result = pytester.runpytest_subprocess(
        *aa_args("--virt-warmup=0", "--virt-processes=1", "--virt-calls=1", "--virt-timeout=60", "--virt-json=v.json",
                 "-rA", rounds=2))
    elapsed = time.monotonic() - started
    out = result.stdout.str()
    assert elapsed < 60, f"stalled until the timeout ({elapsed:.0f} s)"
    assert "did not finish within" not in out
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "*the test failed in environment*",
        "*AssertionError: the assertion survives*",
    ])
    result.stdout.fnmatch_lines(["*head-of-output yyy*",
                                 "[[]... pytest-virtoverhead: * characters of this output cut here; its first and "
                                 "last 524,288 are kept: what crosses from an environment to the host is bounded "
                                 "...[]]",
                                 "*yyy tail-of-output*"])
    assert len(out) < 8 << 20
    data = read_json(pytester, "v.json")
    assert {r["test"].split("::")[1] for r in data["results"]} >= {"test_prints_a_lot_and_passes"}


def test_bound_text_keeps_head_and_tail():
    text = "a" * 10 + "b" * 100 + "c" * 10
    cut = protocol.bound_text(text, 20, "output")
    assert cut.startswith("a" * 10) and cut.endswith("c" * 10)
    assert "[... pytest-virtoverhead: 100 characters of this output cut here; its first and last 10 are kept" in cut
    assert protocol.bound_text("short", 20) == "short"


def test_a_reply_over_the_frame_limit_is_an_error_reply_not_silence():
    from pytest_virtoverhead.guest.worker import Worker

    sent = []
    worker = Worker(lambda n: b"", sent.append)
    worker.reply(7, "z" * (protocol.MAX_FRAME + 1))
    (reply,) = protocol.FrameDecoder().feed(sent[0])
    assert reply["id"] == 7 and reply["ok"] is False
    assert reply["error"]["type"] == "FrameTooLarge"
    assert "exceed the protocol's frame limit of 67,108,864 bytes" in reply["error"]["message"]


def test_dump_keeps_each_text_within_its_limit(pytester):
    pytester.makepyfile(test_one="def test_a():\n    print('q' * (3 << 20))\n")
    reports = []

    class Keep:
        def pytest_runtest_logreport(self, report):
            reports.append(report)

    pytester.inline_run("-p", "no:cacheprovider", plugins=[Keep()])
    config = pytester.parseconfigure()
    data = testreports.dump(config, reports, [])
    assert len(json.dumps(data)) < 4 * testreports.TEXT_LIMIT
    sections = [s for r in data["reports"] for s in r["sections"]]
    assert sections and all("characters of this output cut here" in content for _, content in sections)
    with pytest.raises(protocol.FrameTooLarge):
        protocol.encode("w" * (protocol.MAX_FRAME + 1))
