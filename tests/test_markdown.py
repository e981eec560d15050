"""A summary where CI shows it. ``--virt-markdown=PATH``
(ini ``virt_markdown``) and ``$GITHUB_STEP_SUMMARY``; the renderer is
:mod:`pytest_virtoverhead.render.markdown`, fed the ``--virt-json`` document.
The Markdown is checked by parsing it with markdown-it-py (GFM tables)."""

import re
import shlex
from pathlib import Path

import pytest
from test_compare_cli import T, run
from virthelp import aa_args, read_json

from pytest_virtoverhead.render import markdown as md

markdown_it = pytest.importorskip("markdown_it", reason="the test extra is not installed (markdown-it-py)")

ROOT = Path(__file__).resolve().parent.parent
AA = aa_args(rounds=3, seed=5)


def tables(text: str) -> list[list[list[str]]]:
    """Every table of ``text`` as GFM renders it: rows of cell texts (the
    header row first), code spans as their content."""
    parser = markdown_it.MarkdownIt("commonmark").enable("table")
    out: list[list[list[str]]] = []
    for tok in parser.parse(text):
        if tok.type == "table_open":
            out.append([])
        elif tok.type == "tr_open":
            out[-1].append([])
        elif tok.type == "inline" and out and out[-1] and tok.level >= 4:
            out[-1][-1].append("".join(c.content for c in tok.children or []
                                       if c.type in ("text", "code_inline")).strip())
    return out


LONG = "tests/test_params.py::test_parse[" + "x" * 150 + "-{}]"


def document(**extra):
    """A hand-made --virt-json document (version 2 keys that matter here)."""
    tests = ["tests/a.py::test_pipe[a|b]", "tests/a.py::test_nl[line1\nline2]", LONG.format(1), LONG.format(2),
             "tests/a.py::test_`tick`"]
    results, claims, entries = [], [], []
    for i, t in enumerate(tests):
        entries.append({"test": t, "outcome": "measured", "disturbed": 0})
        results.append({"test": t, "env": "baremetal", "samples": [0.01, 0.011], "median": 0.0105,
                        "n_rounds": 2})
        results.append({"test": t, "env": "vm", "samples": [0.07, 0.08], "median": 0.075, "n_rounds": 2,
                        "ratio": 7.1 + i, "ci": [6.8 + i, 7.4 + i]})
    claims.append({"test": tests[0], "claim": "vm <= 2 * baremetal", "env": "vm", "baseline": "baremetal",
                   "ratio": 7.1, "ci": [6.8, 7.4], "verdict": "fail", "accel": "tcg"})
    claims.append({"test": tests[1], "claim": "vm <= 10 * baremetal", "env": "vm", "baseline": "baremetal",
                   "ratio": 8.1, "ci": [7.8, 8.4], "verdict": "pass"})
    claims.append({"test": tests[2], "claim": "vm ~= 8 * baremetal +- 5%", "env": "vm", "baseline": "baremetal",
                   "ratio": 9.1, "ci": [8.1, 10.1], "verdict": "inconclusive", "rounds_needed": 40.2})
    claims.append({"test": tests[3], "claim": "container <= baremetal + 5%", "env": "container",
                   "baseline": "baremetal", "ratio": None, "ci": [None, None], "verdict": "skipped",
                   "reason": "container: not in this run"})
    data = {"version": 2, "seed": 9, "baseline": "baremetal", "rounds": 2,
            "statistics": {"confidence": 0.9},
            "environments": {"baremetal": {"kind": "baremetal"}, "vm": {"kind": "vm", "accel": "tcg"}},
            "results": results, "claims": claims, "tests": entries}
    data.update(extra)
    return data, tests


def test_claims_first_then_the_table_in_details():
    data, tests = document()
    text = md.render(data)
    assert text.startswith("## pytest-virtoverhead: 4 claims: ❌ 1 failed, ⚠️ 1 inconclusive, ✅ 1 passed, "
                           "⏭️ 1 skipped\n")
    claims_at, details_at = text.index("| verdict |"), text.index("<details><summary>Per-test table (5 tests)")
    assert claims_at < details_at and text.rstrip().endswith("</details>")
    [claims, per_test] = tables(text)
    assert claims[0] == ["verdict", "test", "claim", "ratio", "90% CI", "note"]
    # Failures first, then inconclusive, passed, skipped; every cell in place.
    assert [r[0] for r in claims[1:]] == ["❌ fail", "⚠️ inconclusive", "✅ pass", "⏭️ skipped"]
    assert claims[1][1:] == ["tests/a.py::test_pipe[a|b]", "vm <= 2 * baremetal", "7.100", "[6.800, 7.400]",
                             "vm ran under TCG (software emulation)"]
    assert claims[2][4:] == ["[8.100, 10.100]", "about 41 rounds in all would decide it"]
    assert claims[4][3:] == ["-", "-", "container: not in this run"]
    assert per_test[0] == ["test", "env", "rounds", "median", "ratio", "90% CI", "verdict"]
    assert len(per_test) == 1 + 2 * len(tests)
    assert all(len(row) == 7 for row in per_test)
    assert per_test[1] == ["tests/a.py::test_pipe[a|b]", "baremetal", "2", "10.5 ms", "1.000", "baseline", ""]
    assert per_test[2] == ["", "vm [tcg]", "2", "75 ms", "7.100", "[6.800, 7.400]", "❌ fail"]


def test_pipes_newlines_backticks_and_long_ids_do_not_break_the_table():
    data, tests = document()
    [claims, per_test] = tables(md.render(data))
    shown = [row[0] for row in per_test[1::2]]
    assert shown[0] == "tests/a.py::test_pipe[a|b]"  # the pipe escaped, shown as it is
    assert shown[1] == "tests/a.py::test_nl[line1 ⏎ line2]"
    assert shown[4] == "tests/a.py::test_`tick`"
    # Long ids: shortened with an ellipsis, still told apart, the end kept.
    long1, long2 = shown[2], shown[3]
    assert "…" in long1 and len(long1) <= md.MAX_ID and long1.endswith("-1]")
    assert long1 != long2 and long2.endswith("-2]")
    assert len(set(shown)) == len(shown)
    # The same test reads the same in both tables.
    assert claims[2][1] == long1 and claims[4][1] == long2  # inconclusive, skipped


def test_shortened_ids_that_would_read_the_same_stay_distinct():
    a = "t.py::test_x[" + "a" * 100 + "1" + "b" * 100 + "]"
    b = "t.py::test_x[" + "a" * 100 + "2" + "b" * 100 + "]"
    whole = md.shorten(a)
    assert whole == md.shorten(b)  # the difference sits in the cut
    shown = md.short_ids([a, b, whole])
    assert shown[whole] == whole  # an id that fits is never changed
    assert len(set(shown.values())) == 3
    assert all(len(s) <= md.MAX_ID for s in shown.values())
    assert re.fullmatch(r".*~[0-9a-f]{8}", shown[a])
    # A line break shown as ⏎ is told apart from an id holding that text.
    shown = md.short_ids(["t.py::test[a\nb]", "t.py::test[a ⏎ b]"])
    assert len(set(shown.values())) == 2 and shown["t.py::test[a ⏎ b]"] == "t.py::test[a ⏎ b]"


def test_pipes_in_claims_and_notes_are_escaped():
    data, _ = document()
    data["claims"][3]["reason"] = "a | b\nsecond line"
    data["claims"][0]["claim"] = "vm <= 2 * baremetal | x"
    [claims, _] = tables(md.render(data))
    assert claims[1][2] == "vm <= 2 * baremetal | x"
    assert claims[4][5] == "a | b"
    assert all(len(row) == 6 for row in claims)


def test_failed_skipped_and_empty_runs():
    data, tests = document(aborted=True, exitstatus=2)
    data["tests"][0].update(outcome="failed", error="boom")
    data["results"][1]["error"] = "boom"
    data["tests"][1].update(outcome="skipped", skipped="no docker\nmore")
    text = md.render(data)
    assert "The run did not finish (exit status 2)" in text
    [_, per_test] = tables(text)
    assert ["", "", "", "", "", "", "test failed in vm"] in per_test
    assert ["", "", "", "", "", "", "skipped: no docker"] in per_test
    empty = md.render({"version": 2, "baseline": "baremetal", "results": [], "claims": [], "tests": []})
    assert empty.startswith("## pytest-virtoverhead: 0 tests compared, no claims")
    assert "No claims were checked." in empty and "No test was measured." in empty
    assert tables(empty) == []


def test_a_summary_over_the_size_limit_leaves_rows_out_and_says_so():
    data, _ = document()
    full = md.render(data)
    small = md.render(data, max_bytes=len(full.encode()) - 200)
    assert len(small.encode()) <= len(full.encode()) - 200
    assert "more row(s) left out to keep this summary small" in small
    [claims, per_test] = tables(small)
    assert len(claims) == 5 and len(per_test) < 11


def test_summary_appended_to_an_almost_full_file_stays_small(tmp_path, monkeypatch):
    data, _ = document()
    data["results"] *= 30  # about 20 kB of Markdown
    assert len(md.render(data).encode()) > 15_000
    monkeypatch.setattr(md, "SUMMARY_MAX_BYTES", 13_000)
    path = tmp_path / "summary"
    path.write_text("x" * 5000)
    md.append_summary(str(path), data)
    text = path.read_text()
    assert text.startswith("x" * 5000 + "\n## pytest-virtoverhead")
    assert len(text.encode()) <= 13_001 and "left out to keep this summary small" in text


def test_seconds_match_the_terminal_table():
    # One formatter (textfmt.seconds) serves the terminal table and the Markdown.
    from pytest_virtoverhead.render import report

    assert md.seconds is report.textfmt.seconds
    expected = ["12.5 s", "1 s", "2.1 ms", "35 us", "2 ns", "0 ns", "-", "-"]
    for value, text in zip((12.5, 1.0, 0.0021, 3.5e-5, 2e-9, 0.0, float("nan"), float("inf")), expected):
        assert md.seconds(value) == text


def test_rate_column_when_a_test_recorded_its_work():
    data, _ = document()
    data["results"][0]["rate"] = {"value": 1234.5, "unit": "docs/s", "kind": "work over wall time"}
    [_, per_test] = tables(md.render(data))
    assert per_test[0][4] == "rate" and per_test[1][4] == "1,234 docs/s wall"


# -- through pytest ------------------------------------------------------------

MARKED = """
import time
import pytest

@pytest.mark.virt(claims=["control <= 100 * baremetal"])
def test_a():
    time.sleep(0.002)
"""


def test_option_writes_markdown_and_github_summary_is_appended(pytester, monkeypatch):
    pytester.makepyfile(test_m=MARKED)
    summary = pytester.path / "summary.md"
    summary.write_text("# an earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    result = pytester.runpytest_subprocess(*AA, "--virt-markdown=out/virt.md", "--virt-json=v.json")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str() + result.stderr.str()
    result.stdout.fnmatch_lines(["*Markdown summary written to out/virt.md*",
                                 f"*GitHub job summary appended to {summary}*"])
    written = (pytester.path / "out" / "virt.md").read_text()
    appended = summary.read_text()
    assert appended.startswith("# an earlier step\n\n## pytest-virtoverhead: 1 claim: ✅ 1 passed")
    assert appended.endswith(written)
    # The same document as --virt-json's, rendered.
    assert written == md.render(read_json(pytester, "v.json"))
    [claims, per_test] = tables(written)
    assert claims[1][:3] == ["✅ pass", "test_m.py::test_a", "control <= 100 * baremetal"]
    assert [r[1] for r in per_test[1:] if r[1]] == ["baremetal", "control"]  # (a noise note may follow)


def test_ini_key_and_no_summary_without_the_variable(pytester, monkeypatch):
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    pytester.makepyfile(test_m=MARKED)
    pytester.makeini("[pytest]\nvirt_markdown = from-ini.md\n")
    result = pytester.runpytest_subprocess(*AA)
    assert result.ret == pytest.ExitCode.OK
    assert (pytester.path / "from-ini.md").read_text().startswith("## pytest-virtoverhead: 1 claim")
    assert "GitHub job summary" not in result.stdout.str()


def test_unwritable_markdown_path_is_a_usage_error_naming_the_option(pytester):
    (pytester.path / "outdir").mkdir()
    pytester.makepyfile(test_m=MARKED)
    result = pytester.runpytest_subprocess(*AA, "--virt-markdown=outdir")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--virt-markdown: cannot write outdir: it is a directory; name a file in it, "
                                 "e.g. outdir/virt.md*"])


def test_summary_that_cannot_be_appended_is_named_and_the_other_outputs_written(pytester, monkeypatch):
    (pytester.path / "summary-dir").mkdir()
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(pytester.path / "summary-dir"))
    pytester.makepyfile(test_m=MARKED)
    result = pytester.runpytest_subprocess(*AA, "--virt-json=v.json", "--virt-markdown=v.md")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*results written to v.json*", "*Markdown summary written to v.md*",
                                 "*virtoverhead: GITHUB_STEP_SUMMARY: could not append to *summary-dir: "
                                 "Is a directory*"])
    assert read_json(pytester, "v.json")["claims"]
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


# -- the GitHub Actions recipe of docs/ci.md, run here ---------------------------


def recipe_step():
    """The step of docs/ci.md's GitHub Actions recipe that runs the gate."""
    yaml = pytest.importorskip("yaml")
    text = (ROOT / "docs" / "ci.md").read_text()
    section = text[text.index("## GitHub Actions"):]
    block = section[section.index("```yaml\n") + 8:]
    workflow = yaml.safe_load(block[:block.index("```")])
    steps = workflow["jobs"]["overhead"]["steps"]
    [gate] = [s for s in steps if "--virt-select" in str(s.get("run", ""))]
    return steps, gate


def test_github_actions_recipe_runs_here(pytester, monkeypatch):
    """The recipe's gate command, run on a suite with no marker, with
    GITHUB_STEP_SUMMARY pointed at a file: the job summary gets the claims
    and the table, and the files the upload step names exist. Here the
    container is a second baremetal environment named ``container`` and
    the VM is absent (its claim is skipped): the command is otherwise the
    recipe's, word for word."""
    steps, gate = recipe_step()
    words = shlex.split(gate["run"])
    pytest_at = next(i for i, w in enumerate(words) if w.endswith("pytest"))
    args = [w for w in words[pytest_at + 1:] if not w.startswith("--virt-require")]
    assert "--virt-compare" in args and any(a.startswith("--virt-select=") for a in args)
    assert any("GITHUB_STEP_SUMMARY" in w for w in words[:pytest_at]), "sudo must keep GITHUB_STEP_SUMMARY"
    [upload] = [s for s in steps if str(s.get("uses", "")).startswith("actions/upload-artifact@")]
    uploaded = upload["with"]["path"].split()
    pytest.importorskip("matplotlib")

    pytester.mkdir("tests")
    (pytester.path / "tests" / "test_suite.py").write_text(
        "import time\n\n"
        "def test_perf_parse():\n    time.sleep(0.002)\n\n"
        "def test_unit():\n    pass\n")
    summary = pytester.path / "step_summary"
    summary.touch()
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    result = pytester.runpytest_subprocess(*args, "--virt-envs=baremetal,container=baremetal",
                                           "--virt-rounds=3", "-p", "no:cacheprovider")
    out = result.stdout.str() + result.stderr.str()
    assert result.ret in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED), out
    for path in uploaded:
        assert (pytester.path / path).is_file(), f"{path} (uploaded by the recipe) was not written\n{out}"
    text = summary.read_text()
    [claims, per_test] = tables(text)
    verdicts = {row[2]: row[0] for row in claims[1:]}
    assert verdicts.keys() >= {"vm <= 1.3 * baremetal"} and verdicts["vm <= 1.3 * baremetal"] == "⏭️ skipped"
    assert any(v in ("✅ pass", "❌ fail", "⚠️ inconclusive") for v in verdicts.values())
    assert {r[0] for r in per_test[1:]} - {""} == {"tests/test_suite.py::test_perf_parse"}
    data = read_json(pytester, "virt.json")
    assert {r["test"] for r in data["results"]} == {"tests/test_suite.py::test_perf_parse"}


def test_markdown_header_says_the_rounds_the_tests_had():
    data = run({(T, "baremetal"): [1.0] * 3, (T, "vm"): [2.0] * 3})
    data["rounds"] = 12  # --virt-rounds, which the markers overrode
    data["tests"] = [{"test": T, "rounds": 3}, {"test": "tests/x.py::test_b", "rounds": 5}]
    text = md.render(data)
    assert "3 to 5 rounds per test" in text and "12 rounds per test" not in text
    data["tests"] = [{"test": T, "rounds": 3}]
    assert "3 rounds per test" in md.render(data)
