"""Issue 25's rough edges that were smoothed: claims that can never pass,
a newline in a test id, the Markdown header's rounds, compare's seconds,
report of an aborted run."""

import pytest
from test_compare_cli import T, run, write

from pytest_virtoverhead import cli, markdown
from pytest_virtoverhead.claims import ClaimError, parse_claim
from pytest_virtoverhead.textfmt import text_table


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


def test_a_newline_in_a_test_id_keeps_the_table_one_row_per_line():
    lines = text_table(["test", "median"], [["t.py::test_p[a\nb]", "1 ms"], ["t.py::test_q", "2 ms"]])
    assert len(lines) == 4
    assert lines[2].startswith("t.py::test_p[a\\nb]")


def test_markdown_header_says_the_rounds_the_tests_had():
    data = run({(T, "baremetal"): [1.0] * 3, (T, "vm"): [2.0] * 3})
    data["rounds"] = 12  # --virt-rounds, which the markers overrode
    data["tests"] = [{"test": T, "rounds": 3}, {"test": "tests/x.py::test_b", "rounds": 5}]
    text = markdown.render(data)
    assert "3 to 5 rounds per test" in text and "12 rounds per test" not in text
    data["tests"] = [{"test": T, "rounds": 3}]
    assert "3 rounds per test" in markdown.render(data)


def test_compare_shows_an_absolute_claims_estimates_in_seconds(tmp_path, capsys):
    s = {(T, "baremetal"): [1.0] * 3, (T, "vm"): [2.0] * 3}
    a, b = run(s, claims=[(T, "vm <= 50 ms", "vm", "pass", 0.0412)]), \
        run(s, claims=[(T, "vm <= 50 ms", "vm", "fail", 0.0613)])
    for doc in (a, b):
        doc["claims"][0].update(unit="s", kind="absolute", baseline=None)
    cli.main(["compare", write(tmp_path, "a.json", a), write(tmp_path, "b.json", b)])
    out = capsys.readouterr().out
    assert "vm <= 50 ms: pass -> fail  (estimate 41.2 ms -> 61.3 ms)" in out, out


def test_report_draws_an_aborted_run_and_says_it_is_partial(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    doc = run({(T, "baremetal"): [1.0] * 3, (T, "vm"): [2.0] * 3}, aborted=True, exitstatus=2)
    out_path = tmp_path / "r.html"
    assert cli.main(["report", write(tmp_path, "b.json", doc), "-o", str(out_path)]) == 0
    assert "the run did not finish: its results are partial" in capsys.readouterr().out
    assert "interrupted" in out_path.read_text()


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
    result = pytester.runpytest_subprocess(
        "--virt-compare", "--virt-envs=baremetal,control=baremetal", "--collect-only", "-p", "no:cacheprovider",
        "--virt-select=nomatch", "--virt-claim=test_warned.py::test_a: control <= 2 * baremetal")
    result.stdout.fnmatch_lines_random([
        "*PytestConfigWarning: --virt-select 'nomatch' matches no unmarked test of this run*",
        "*PytestConfigWarning: --virt-claim 1: the group 'test_warned.py::test_a' matches no compared test of "
        "this run*(-k expressions match test names and keywords, not node ids*",
        "*PytestConfigWarning: 2 waivers of claim 'control <= 100 * baremetal' (first for "
        "test_warned.py::test_a): marker of test_warned.py::test_a, virt_waivers (ini) entry 1; only the first "
        "applies (waived until 2027-01-31: the marker's reason): remove the others",
    ])
