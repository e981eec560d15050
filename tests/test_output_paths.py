"""Outputs that share a file (with each other, with an
input, with the GitHub job summary) are a usage error before any work,
not one output silently replacing another."""

import os

import pytest
from virthelp import aa_args

from pytest_virtoverhead.offline import cli

SUITE = """
import pytest

@pytest.mark.virt(claims=["control <= 100 * baremetal"])
def test_a():
    pass
"""

RUN = aa_args(rounds=2)


@pytest.mark.parametrize("options, message", [
    (["--virt-json=o.out", "--virt-markdown=o.out"],
     "*--virt-markdown: o.out is also the path of --virt-json: one output would replace the other*"),
    (["--virt-json=o.out", "--virt-markdown=./sub/../o.out"], "*--virt-markdown: ./sub/../o.out is also the path*"),
    (["--virt-json=o.out", "--virt-markdown=link.md"], "*--virt-markdown: link.md is also the path of --virt-json*"),
    (["--virt-json=o.out", "--junitxml=o.out"], "*--junitxml: o.out is also the path of --virt-json*"),
])
def test_outputs_at_one_path_are_a_usage_error_before_any_work(pytester, options, message):
    pytester.makepyfile(test_shared=SUITE)
    (pytester.path / "sub").mkdir()
    os.symlink("o.out", pytester.path / "link.md")  # a dangling link to the JSON's path
    result = pytester.runpytest_subprocess(*RUN, *options)
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str()
    result.stderr.fnmatch_lines(["ERROR: " + message.lstrip("*")])
    assert not (pytester.path / "o.out").exists()
    assert "passed" not in result.stdout.str()


def test_markdown_at_the_job_summary_is_refused_and_the_summary_kept(pytester, monkeypatch):
    pytester.makepyfile(test_shared=SUITE)
    summary = pytester.path / "summary.md"
    summary.write_text("# an earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    result = pytester.runpytest_subprocess(*RUN, f"--virt-markdown={summary}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: --virt-markdown: {summary} is GITHUB_STEP_SUMMARY, where the same "
                                 "summary is appended already*drop --virt-markdown, or name another file"])
    assert summary.read_text() == "# an earlier step\n"


def _files(tmp_path, *names):
    for name in names:
        (tmp_path / name).write_text(f'{{"name": "{name}"}}')
    return [str(tmp_path / n) for n in names]


@pytest.mark.parametrize("argv, message", [
    (["history", "{a}", "{b}", "{c}", "-o", "{c}"], "-o/--output: {c} is also an input (input {c})"),
    (["history", "{d}", "-o", "{b}"], "-o/--output: {b} is also an input (input {b})"),
    (["history", "{a}", "{b}", "-o", "{h}", "--markdown", "{h}"],
     "--markdown: {h} is also the path of -o/--output"),
    (["report", "{a}", "-o", "{a}"], "-o/--output: {a} is also an input (RUN.json)"),
    (["compare", "{a}", "{b}", "--json", "{b}"], "--json: {b} is also an input (B.json)"),
])
def test_cli_outputs_at_an_input_or_at_each_other_are_exit_2(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    a, b, c = _files(tmp_path, "a.json", "b.json", "c.json")
    names = {"a": a, "b": b, "c": c, "d": str(tmp_path), "h": str(tmp_path / "h.html")}
    before = {p: open(p).read() for p in (a, b, c)}
    assert cli.main([x.format(**names) for x in argv]) == 2
    err = capsys.readouterr().err
    assert message.format(**names) in err, err
    assert {p: open(p).read() for p in (a, b, c)} == before
    assert not os.path.exists(names["h"])


def test_cli_history_markdown_at_the_job_summary_is_exit_2(tmp_path, capsys, monkeypatch):
    a, b = _files(tmp_path, "a.json", "b.json")
    summary = tmp_path / "summary.md"
    summary.write_text("earlier\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    assert cli.main(["history", a, b, "-o", str(tmp_path / "h.html"), "--markdown", str(summary)]) == 2
    assert "--markdown: " in capsys.readouterr().err
    assert summary.read_text() == "earlier\n"
