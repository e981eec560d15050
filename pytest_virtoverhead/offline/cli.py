"""``pytest-virtoverhead``: work with saved runs, offline.

    pytest-virtoverhead compare A.json B.json [--tolerance 5%] [--confidence 0.95] [--json OUT]
        How overheads changed from run A to run B (both --virt-json files,
        version 2 or 3). Exit 0: no regression; 1: a regression (an overhead
        ratio that grew beyond the tolerance over its whole confidence
        interval, or a claim that passed in A and fails in B); 2: unreadable
        or incomplete input (an aborted run), bad usage, or nothing measured
        in both runs.

    pytest-virtoverhead report RUN.json -o report.html
        Render the HTML report of a saved run (needs matplotlib).

    pytest-virtoverhead history RUN.json|DIR [...] [-o virt-history.html] [--markdown PATH]
        Follow each claim over several saved runs: an HTML page with one
        plot per claim, step changes marked, and a Markdown summary of
        what changed between the last two runs (also appended to
        $GITHUB_STEP_SUMMARY when that is set). Exit 0 when written, 2 on
        unreadable input or runs with no claim in common.

    pytest-virtoverhead merge RUN.json... -o OUT.json [--markdown PATH] [--report PATH]
        Join runs (CI shards) into one run document that compare, history
        and report read. Tests measured on different machines stay apart
        (times are never pooled across hosts). Exit 0 when merged, 2 when
        the runs cannot be merged (the same test with different claims, or
        twice on one machine; different document versions, baselines or
        confidence levels; unreadable or aborted input), with a message
        naming both sides.

The comparison itself is :mod:`.runcompare`, the history
:mod:`.history`, the merge :mod:`.runmerge` (pure functions).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Callable, Sequence, TextIO

from ..judge.textfmt import FAIL, INCONCLUSIVE, PASS, change, fixed, interval, seconds, text_table
from ..render import htmlreport, templating
from . import history, historyhtml, historymd, runcompare, runmerge

_ROW_VERDICT: dict[str, str] = {PASS: "ok", FAIL: "WORSE", INCONCLUSIVE: "inconclusive"}


def format_comparison(cmp: runcompare.RunComparison, name_a: str = "A", name_b: str = "B") -> list[str]:
    """The lines the ``compare`` command prints."""
    tol = cmp.tolerance * 100
    pct = f"{round(cmp.confidence * 100, 6):g}%"
    out = [f"A = {name_a}", f"B = {name_b}",
           f"verdict per test and environment: is B's overhead not worse than A's, i.e. ratio B / ratio A "
           f"<= {1 + cmp.tolerance:g} ('{cmp.claim}', tolerance {tol:g}%) over the whole {pct} CI; "
           f"'better' needs the whole CI under {1 / (1 + cmp.tolerance):.3f}",
           "(intervals from rounds paired with their baseline, worker processes as clusters)", ""]
    if cmp.rows:
        rows = []
        for r in cmp.rows:
            env = r.env
            if r.accel_b:
                env += f" [{r.accel_b}]"
            verdict = _ROW_VERDICT.get(r.verdict, r.verdict)
            if r.verdict == PASS and r.better:
                verdict += " (better)"
            rows.append([r.test, env, fixed(r.ratio_a), fixed(r.ratio_b),
                         change(r.change),
                         interval(r.ci), verdict + (f"  ({r.note})" if r.note else "")])
        out += text_table(["test", "env", "ratio A", "ratio B", "change", f"B/A {pct} CI", "verdict"], rows, {2, 3, 4})
    else:
        out.append("nothing in common: no test and environment was measured in both runs")
    if cmp.claims:
        out += ["", "claims whose verdict changed:"]
        for c in cmp.claims:
            tag = "REGRESSION  " if c.regression else ""
            ratios = (f"  (estimate {seconds(c.ratio_a)} -> {seconds(c.ratio_b)})" if c.unit == "s" else
                      f"  (ratio {fixed(c.ratio_a)} -> {fixed(c.ratio_b)})")
            out.append(f"  {tag}{c.test}: {c.claim}: {c.verdict_a or 'absent'} -> {c.verdict_b or 'absent'}{ratios}")
    for label, items in (("measured only in A", cmp.only_in_a), ("measured only in B", cmp.only_in_b)):
        if items:
            out.append(f"{label} ({len(items)}):")
            out += [f"  {item}" for item in items]
    for note in cmp.notes:
        out.append(f"note: {note}")
    out.append("")
    regressions = cmp.regressions
    if regressions:
        out.append(f"{len(regressions)} regression(s):")
        out += [f"  {r}" for r in regressions]
    elif not cmp.in_common:
        out.append("nothing to compare: the runs have no test and environment in common (exit status 2)")
    else:
        missing = len(cmp.only_in_a) + len(cmp.only_in_b)
        out.append("no regression" + (f" among what both runs measured ({missing} row(s) measured in "
                                      "only one run, listed above)" if missing else ""))
    return out


class UsageProblem(Exception):
    """Bad usage: exit status 2 with this message."""


def _check_output(path: str | None, option: str) -> None:
    if path:
        from ..results.outputs import output_problem

        problem = output_problem(path)
        if problem:
            raise UsageProblem(f"{option}: cannot write {path}: {problem}")


def _check_shared(outputs: dict[str, str | None], inputs: dict[str, str], summary_too: bool = True) -> None:
    """Two outputs at one file, or an output at an input's, is bad usage
    before any work: one would replace the other, or the input.
    ``summary_too``: the command also appends to $GITHUB_STEP_SUMMARY."""
    from ..results.outputs import shared_paths

    summary = (os.environ.get("GITHUB_STEP_SUMMARY") or None) if summary_too else None
    problems = shared_paths({**outputs, "GITHUB_STEP_SUMMARY": summary}, inputs,
                            appended=frozenset({"GITHUB_STEP_SUMMARY"}))
    if problems:
        raise UsageProblem("; ".join(problems))


def _parsed(parse: Callable[[str], float], text: str) -> float:
    """``parse(text)``; its ValueError is bad usage."""
    try:
        return parse(text)
    except ValueError as exc:
        raise UsageProblem(str(exc)) from None


def _cmd_compare(args: argparse.Namespace, stdout: TextIO) -> int:
    tolerance = _parsed(runcompare.parse_tolerance, args.tolerance)
    confidence = _parsed(runcompare.parse_confidence, args.confidence)
    _check_output(args.json, "--json")
    _check_shared({"--json": args.json}, {"A.json": args.a, "B.json": args.b})
    a = runcompare.load_run(args.a)
    b = runcompare.load_run(args.b)
    cmp = runcompare.compare_runs(a, b, tolerance=tolerance, confidence=confidence)
    for line in format_comparison(cmp, args.a, args.b):
        stdout.write(line + "\n")
    status = 1 if cmp.regressions else 0 if cmp.in_common else 2
    if args.json:
        try:
            from ..fsutil import atomic_write

            atomic_write(args.json, json.dumps(cmp.to_json(), indent=1, allow_nan=False) + "\n")
        except (OSError, ValueError) as exc:
            sys.stderr.write(f"pytest-virtoverhead compare: --json: could not write {args.json}: "
                             f"{getattr(exc, 'strerror', None) or exc}\n")
            return status or 2  # a regression's exit status 1 is not hidden
    return status


def _cmd_report(args: argparse.Namespace, stdout: TextIO) -> int:
    _check_output(args.output, "-o/--output")
    _check_shared({"-o/--output": args.output}, {"RUN.json": args.run})
    # An aborted run is drawn as what it is (partial, marked so); only
    # compare, a gate, refuses it.
    data = runcompare.read_json(args.run)
    runcompare.check_run(data, args.run, allow_aborted=True)
    htmlreport.write_report(args.output, data)
    partial = " (the run did not finish: its results are partial, and the report says so)" \
        if data.get("aborted") is True else ""
    stdout.write(f"report written to {args.output}{partial}\n")
    return 0


def _cmd_history(args: argparse.Namespace, stdout: TextIO) -> int:
    tolerance = _parsed(runcompare.parse_tolerance, args.tolerance)
    _check_output(args.output, "-o/--output")
    _check_output(args.markdown, "--markdown")
    try:
        inputs = history.expand_paths(args.runs)
    except history.HistoryError:
        inputs = []  # history_of says what is wrong with them
    _check_shared({"-o/--output": args.output, "--markdown": args.markdown},
                  {f"input {path}": path for path in inputs})
    htmlreport.require_matplotlib("history")
    hist = history.history_of(args.runs, tolerance=tolerance)
    historyhtml.write_history(args.output, hist)
    changed, _ = hist.last_changes()
    stdout.write(f"history of {len(hist.runs)} run(s), {len(hist.series)} claim(s) (ordered by {hist.order}) "
                 f"written to {args.output}\n")
    if len(hist.runs) > 1:
        stdout.write(f"between the last two runs: {len(changed)} claim(s) changed\n")
        for s in changed:
            stdout.write(f"  {s.test}: {s.claim}: {s.last_mark()}\n")
    for note in hist.notes:
        stdout.write(f"note: {note}\n")
    if args.markdown:
        historymd.write_markdown(args.markdown, hist)
        stdout.write(f"Markdown summary written to {args.markdown}\n")
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        historymd.append_summary(summary, hist)
        stdout.write(f"Markdown summary appended to {summary} (GITHUB_STEP_SUMMARY)\n")
    return 0


def _cmd_merge(args: argparse.Namespace, stdout: TextIO) -> int:
    from ..render import markdown
    from ..results import write_json_atomic

    for path, option in ((args.output, "-o/--output"), (args.markdown, "--markdown"), (args.report, "--report")):
        if path:
            _check_output(path, option)
            runmerge.check_output(path, args.runs, option)
    # merge appends to no job summary itself: --markdown may name it.
    _check_shared({"-o/--output": args.output, "--markdown": args.markdown, "--report": args.report},
                  {f"RUN.json {i}": run for i, run in enumerate(args.runs, 1)}, summary_too=False)
    if args.report:
        htmlreport.require_matplotlib("merge --report")
    merged = runmerge.merge_runs(runmerge.load_inputs(args.runs))
    write_json_atomic(args.output, merged)
    stdout.write(f"{runmerge.summary(merged)}; written to {args.output}\n")
    if args.markdown:
        markdown.write_markdown(args.markdown, merged)
        stdout.write(f"Markdown summary written to {args.markdown}\n")
    if args.report:
        htmlreport.write_report(args.report, merged)
        stdout.write(f"report written to {args.report}\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pytest-virtoverhead",
                                     description="Work with saved pytest-virtoverhead runs (--virt-json files).")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("compare", help="how overheads changed between two runs; exit 1 on a regression",
                       description="Compare the overheads of run B with run A. Exit 0: no regression; 1: a "
                                   "regression; 2: bad input.")
    p.add_argument("a", metavar="A.json", help="the earlier run (--virt-json file)")
    p.add_argument("b", metavar="B.json", help="the later run (--virt-json file)")
    p.add_argument("--tolerance", default="5%", metavar="P%",
                   help="how much worse B's overhead ratio may be before it counts as a regression (default 5%%)")
    p.add_argument("--confidence", default="0.95", metavar="LEVEL",
                   help="confidence level of the intervals, e.g. 0.95 or 99%% (default 0.95)")
    p.add_argument("--json", metavar="PATH", help="also write the comparison as JSON")
    p.set_defaults(func=_cmd_compare)
    r = sub.add_parser("report", help="render the HTML report of a saved run (needs matplotlib)")
    r.add_argument("run", metavar="RUN.json", help="a --virt-json file")
    r.add_argument("-o", "--output", default="virt-report.html", help="where to write (default virt-report.html)")
    r.set_defaults(func=_cmd_report)
    h = sub.add_parser("history", help="each claim over several saved runs, step changes marked (HTML and "
                                       "Markdown; needs matplotlib)",
                       description="Follow each claim (test id + claim text) over saved --virt-json runs, in "
                                   "the order of their recorded time (else as given): an HTML page with one plot "
                                   "per claim and step changes marked, and a Markdown summary of what changed "
                                   "between the last two runs (appended to $GITHUB_STEP_SUMMARY when set).")
    h.add_argument("runs", nargs="+", metavar="RUN.json",
                   help="--virt-json files, or directories of them (their *.json files, by name)")
    h.add_argument("-o", "--output", default="virt-history.html",
                   help="where to write the HTML page (default virt-history.html)")
    h.add_argument("--markdown", metavar="PATH", help="also write the Markdown summary of the last two runs")
    h.add_argument("--tolerance", default="5%", metavar="P%",
                   help="the smallest change of an estimate marked as a step (default 5%%)")
    h.set_defaults(func=_cmd_history)
    m = sub.add_parser("merge", help="join runs (CI shards) into one run document; exit 2 when they cannot be "
                                     "merged",
                       description="Join saved --virt-json runs (CI shards) into one run document that compare, "
                                   "history and report read. Tests measured on different machines stay apart; "
                                   "never are times pooled across hosts. Exit 0 when merged, 2 when the runs "
                                   "cannot be merged (the message names both sides).")
    m.add_argument("runs", nargs="+", metavar="RUN.json", help="--virt-json files (merged ones too)")
    m.add_argument("-o", "--output", required=True, metavar="OUT.json", help="where to write the merged run")
    m.add_argument("--markdown", metavar="PATH",
                   help="also write its Markdown summary (e.g. to $GITHUB_STEP_SUMMARY)")
    m.add_argument("--report", metavar="PATH", help="also write its HTML report (needs matplotlib)")
    m.set_defaults(func=_cmd_merge)
    return parser


def main(argv: Sequence[str] | None = None, stdout: TextIO | None = None) -> int:
    args = build_parser().parse_args(argv)
    stdout = stdout or sys.stdout
    try:
        return args.func(args, stdout)
    except (runcompare.RunFileError, runmerge.MergeError, history.HistoryError, htmlreport.ReportUnavailable,
            templating.TemplatesUnavailable, UsageProblem, OSError) as exc:
        sys.stderr.write(f"pytest-virtoverhead {args.command}: {exc}\n")
        return 2
    except Exception as exc:  # noqa: BLE001 - bad input must not look like a regression (exit 1)
        sys.stderr.write(f"pytest-virtoverhead {args.command}: cannot process the input: "
                         f"{type(exc).__name__}: {exc}\n")
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
