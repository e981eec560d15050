"""History: ``pytest-virtoverhead history RUN.json ...``.

Unit tests of :mod:`pytest_virtoverhead.offline.history` on hand-made run documents
(the step rule checked on numbers worked out by hand), the command line,
and end to end: a history over five saved runs of a small suite renders
in headless Chromium with one plot per claim.
"""

import json
import re

import pytest

from pytest_virtoverhead.offline import cli, history, historymd
from pytest_virtoverhead.offline.history import DOWN, UP, HistoryError


def claim(test="t.py::test_a", text="vm <= 2 * baremetal", ratio=1.0, ci=(0.98, 1.02), verdict="pass", **kw):
    return {"test": test, "claim": text, "env": kw.pop("env", "vm"), "baseline": "baremetal", "ratio": ratio,
            "ci": list(ci) if ci is not None else None, "verdict": verdict, "bounds": [None, 2.0], "unit": "ratio",
            **kw}


def doc(*claims, **extra):
    return {"version": 2, "seed": 1, "baseline": "baremetal",
            "environments": {"baremetal": {"kind": "baremetal"}, "vm": {"kind": "vm", "accel": "tcg"}},
            "results": [], "claims": list(claims), "tests": [], **extra}


def runs_of(*docs):
    return [history.Run(path=f"run{i + 1}.json", data=d, time=history.run_time(d)) for i, d in enumerate(docs)]


def series_of(*points, tolerance=history.DEFAULT_TOLERANCE):
    """One claim's history from (ratio, ci, verdict) triples (None: absent)."""
    docs = [doc(claim(ratio=p[0], ci=p[1], verdict=p[2])) if p is not None else doc() for p in points]
    h = history.build(runs_of(*docs), tolerance=tolerance)
    assert len(h.series) == 1
    return h.series[0]


def save(tmp_path, name, data):
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return str(path)


# -- the step rule, by hand -----------------------------------------------------


def test_step_up_where_intervals_part_and_the_estimate_moves_past_the_tolerance():
    s = series_of((1.00, (0.98, 1.02), "pass"), (1.10, (1.07, 1.13), "pass"))
    first, second = s.points
    assert first.step is None and first.change is None  # nothing before the first run
    # 1.07 > 1.02: the intervals do not overlap; 1.10 / 1.00 - 1 = 10% >= 5%
    assert second.step == UP and second.change == pytest.approx(0.10)
    assert not second.flip and not second.verdict_changed and second.marked


def test_step_down():
    s = series_of((2.0, (1.9, 2.1), "fail"), (1.5, (1.4, 1.6), "pass"))
    # 1.6 < 1.9 and |1.5 - 2.0| = 0.5 >= 0.05 * 2.0; 1.5 / 2.0 - 1 = -25%
    assert s.points[1].step == DOWN and s.points[1].change == pytest.approx(-0.25)
    assert s.points[1].flip  # fail -> pass


def test_parted_intervals_under_the_tolerance_are_no_step():
    points = ((1.00, (0.99, 1.01), "pass"), (1.03, (1.02, 1.04), "pass"))
    # 1.02 > 1.01, but 1.03 moved 3% < 5%
    assert series_of(*points).points[1].step is None
    # with a 2% tolerance it is a step (3% >= 2%)
    assert series_of(*points, tolerance=0.02).points[1].step == UP


def test_overlapping_intervals_are_no_step_however_far_the_estimate_moves():
    s = series_of((1.00, (0.90, 1.10), "pass"), (1.20, (1.05, 1.35), "pass"))
    # 1.05 < 1.10: overlap, though the estimate moved 20%
    assert s.points[1].step is None and s.points[1].change == pytest.approx(0.20)


def test_a_point_without_an_interval_marks_no_step():
    s = series_of((1.0, (0.98, 1.02), "pass"), (1.5, None, "inconclusive"))
    assert s.points[1].step is None and s.points[1].verdict_changed and not s.points[1].flip


def test_flips_are_pass_fail_changes_only():
    s = series_of((1.0, (0.9, 1.1), "pass"), (1.0, (0.9, 1.1), "inconclusive"), (1.0, (0.9, 1.1), "fail"),
                  (1.0, (0.9, 1.1), "pass"))
    assert [(p.verdict_changed, p.flip) for p in s.points] == [(False, False), (True, False), (True, False),
                                                              (True, True)]
    assert [p.step for p in s.points] == [None] * 4


def test_a_gap_compares_with_the_last_run_that_had_the_claim():
    s = series_of((1.0, (0.98, 1.02), "pass"), None, (1.3, (1.25, 1.35), "pass"))
    assert s.points[1] is None
    assert s.points[2].step == UP and s.points[2].change == pytest.approx(0.30)
    assert s.last_mark() == "step up (slower)"  # the step outweighs "back"
    s = series_of((1.0, (0.98, 1.02), "pass"), None, (1.0, (0.98, 1.02), "pass"))
    assert s.last_mark() == "back"


def test_time_claims_follow_seconds():
    c1 = claim(text="vm <= 20 ms", ratio=0.015, ci=(0.014, 0.016), unit="s", kind="absolute", bounds=[None, 0.02])
    c2 = claim(text="vm <= 20 ms", ratio=0.030, ci=(0.028, 0.032), verdict="fail", unit="s", kind="absolute",
               bounds=[None, 0.02])
    h = history.build(runs_of(doc(c1), doc(c2)))
    s = h.series[0]
    assert s.unit == "s" and s.points[1].step == UP and s.points[1].flip
    assert history.estimate_text(s, s.points[1]) == "30 ms [28 ms, 32 ms]"


# -- keys, order, notes ---------------------------------------------------------


def test_a_claim_is_its_test_and_its_text():
    h = history.build(runs_of(
        doc(claim(), claim(test="t.py::test_b"), claim(text="vm <= 3 * baremetal")),
        doc(claim(test="t.py::test_b"), claim())))
    assert [s.key for s in h.series] == [("t.py::test_a", "vm <= 2 * baremetal"),
                                         ("t.py::test_b", "vm <= 2 * baremetal"),
                                         ("t.py::test_a", "vm <= 3 * baremetal")]
    assert [len(s.present) for s in h.series] == [2, 2, 1]
    assert h.series[2].points[1] is None and h.series[2].last_mark() == "gone"


def test_runs_are_ordered_by_recorded_time_when_every_run_has_one():
    late, early = doc(claim(ratio=1.5, ci=(1.4, 1.6)), written="2026-11-30T12:00:00Z"), \
        doc(claim(), written="2026-11-29 08:00:00")
    h = history.build(runs_of(late, early))
    assert h.order == "recorded time"
    assert [r.path for r in h.runs] == ["run2.json", "run1.json"] and [r.number for r in h.runs] == [1, 2]
    assert h.series[0].points[1].step == UP  # 1.0 then 1.5, in time order
    assert h.runs[0].time_text == "2026-11-29 08:00:00 UTC"
    # seconds since the epoch work too
    assert history.run_time({"started": 1700000000}) == 1700000000.0


def test_runs_without_a_time_keep_the_given_order_and_say_so():
    h = history.build(runs_of(doc(claim(), written="2026-11-30T12:00:00"), doc(claim())))
    assert h.order == "command line" and [r.path for r in h.runs] == ["run1.json", "run2.json"]
    assert any("run2.json record(s) no time" in n for n in h.notes)
    h = history.build(runs_of(doc(claim()), doc(claim())))
    assert h.notes == ["ordered as given (the runs record no time)"]


def test_one_run_is_one_point():
    h = history.build(runs_of(doc(claim())))
    assert len(h.series) == 1 and len(h.series[0].points) == 1 and h.last_changes() == ([], [])
    md = historymd.render_markdown(h)
    assert "nothing to compare yet" in md and "| ✅ pass | `t.py::test_a` | `vm <= 2 * baremetal` |" in md


def test_partial_runs_are_kept_and_noted():
    h = history.build(runs_of(doc(claim()), doc(claim(), aborted=True, exitstatus=2)))
    assert any("run #2 (run2.json) did not finish" in n for n in h.notes)


# -- errors ---------------------------------------------------------------------


def test_runs_with_no_claim_in_common_say_so():
    with pytest.raises(HistoryError, match=r"the 2 runs have no claim in common .*run1.json: 1 claim\(s\); "
                                           r"run2.json: 1 claim\(s\)"):
        history.build(runs_of(doc(claim()), doc(claim(test="t.py::other"))))
    with pytest.raises(HistoryError, match="no claims in these runs"):
        history.build(runs_of(doc(), doc()))


@pytest.mark.parametrize("content, message", [
    ("not json", r"bad.json: not JSON"),
    (b"\xff\xfe", r"bad.json: not UTF-8"),
    ("[1, 2]", r"bad.json: not a pytest-virtoverhead --virt-json run"),
    ('{"benchmarks": [], "machine_info": {}}', r"bad.json: .*this is a pytest-benchmark file"),
    ('{"version": 9, "results": [], "claims": []}', r"bad.json: unsupported --virt-json version 9"),
    ('{"version": 2, "results": [], "claims": [{"claim": "x"}]}', r"bad.json: claims\[0\] needs 'test' and 'claim'"),
    ('{"version": 2, "results": [], "claims": [{"test": "t", "claim": "x", "ratio": "big"}]}',
     r"bad.json: claims\[0\] \(t: x\): 'ratio' must be a number"),
])
def test_a_file_that_is_not_a_run_is_named(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(HistoryError, match=message):
        history.load_run(str(path))


def test_paths_and_directories(tmp_path):
    (tmp_path / "runs").mkdir()
    b = save(tmp_path / "runs", "b.json", doc(claim()))
    a = save(tmp_path / "runs", "a.json", doc(claim()))
    (tmp_path / "runs" / "notes.txt").write_text("not a run")
    assert history.expand_paths([str(tmp_path / "runs")]) == [a, b]  # *.json, by name
    with pytest.raises(HistoryError, match="no such file or directory"):
        history.expand_paths([str(tmp_path / "missing.json")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(HistoryError, match=r"empty: a directory with no \.json files"):
        history.expand_paths([str(tmp_path / "empty")])


# -- Markdown -------------------------------------------------------------------


FIVE = [
    # test_a: steady, a step up with a flip to fail at run 3, back down at run 5
    # test_b: steady and passing; test_c only in some runs
    doc(claim(ratio=1.50, ci=(1.45, 1.55)), claim(test="t.py::test_b", ratio=1.0, ci=(0.98, 1.02)),
        claim(test="t.py::test_c", ratio=1.2, ci=(1.1, 1.3))),
    doc(claim(ratio=1.52, ci=(1.47, 1.57)), claim(test="t.py::test_b", ratio=1.0, ci=(0.98, 1.02))),
    doc(claim(ratio=2.50, ci=(2.40, 2.60), verdict="fail"), claim(test="t.py::test_b", ratio=1.0, ci=(0.98, 1.02))),
    doc(claim(ratio=2.45, ci=(2.35, 2.55), verdict="fail"), claim(test="t.py::test_b", ratio=1.01, ci=(0.99, 1.03)),
        claim(test="t.py::test_c", ratio=1.2, ci=(1.1, 1.3))),
    doc(claim(ratio=1.51, ci=(1.46, 1.56)), claim(test="t.py::test_b", ratio=1.0, ci=(0.98, 1.02))),
]


def markdown_tables(text):
    """The tables of ``text`` as rendered by a Markdown library: [[cells]]."""
    markdown_it = pytest.importorskip("markdown_it", reason="markdown-it-py (the test extra)")
    html = markdown_it.MarkdownIt("commonmark").enable("table").render(text)
    tables = re.findall(r"<table>(.*?)</table>", html, re.S)
    return [[re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row) for row in re.findall(r"<tr>(.*?)</tr>", t, re.S)]
            for t in tables]


def test_markdown_of_the_last_two_runs():
    h = history.build(runs_of(*FIVE))
    assert [p.step if p else "-" for p in h.series[0].points] == [None, None, UP, None, DOWN]
    md = historymd.render_markdown(h)
    assert md.startswith("## pytest-virtoverhead history: 3 claims over 5 runs; last two runs: 1 step, "
                         "1 verdict change")
    assert "#4 `run4.json` → #5 `run5.json`" in md
    changed, unchanged = markdown_tables(md)
    assert changed[0] == ["change", "test", "claim", "previous", "latest", "change %", "verdict"]
    assert changed[1][0] == "🔻 step down (faster), verdict flip"
    assert changed[1][3:] == ["2.450 [2.350, 2.550]", "1.510 [1.460, 1.560]", "-38.4%", "❌ fail → ✅ pass"]
    assert changed[2][0] == "gone" and changed[2][1] == "<code>t.py::test_c</code>"
    assert changed[2][-1] == "✅ pass → absent"
    assert len(unchanged) == 2 and unchanged[1][1] == "<code>t.py::test_b</code>"  # in <details>
    assert "<details><summary>Unchanged claims (1)</summary>" in md


def test_markdown_cells_stay_in_their_table():
    h = history.build(runs_of(doc(claim(test="t.py::test_a[a|b\nc]")), doc(claim(test="t.py::test_a[a|b\nc]"))))
    rows = markdown_tables(historymd.render_markdown(h))[0]
    assert len(rows) == 2 and len(rows[1]) == 7 and rows[1][1] == "<code>t.py::test_a[a|b ⏎ c]</code>"


def test_markdown_stays_under_a_size():
    many = [doc(*[claim(test=f"t.py::test_{i}", ratio=1 + k / 10, ci=(1 + k / 10 - .01, 1 + k / 10 + .01))
                  for i in range(200)]) for k in range(2)]
    h = history.build(runs_of(*many))
    full = historymd.render_markdown(h)
    short = historymd.render_markdown(h, max_bytes=8000)
    assert len(full.encode()) > 8000 >= len(short.encode())
    assert "more changed claim(s) left out" in short


# -- the command line -----------------------------------------------------------


def test_cli_writes_the_page_and_the_markdown(tmp_path, capsys, monkeypatch):
    pytest.importorskip("matplotlib")
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    paths = [save(tmp_path, f"run{i + 1}.json", d) for i, d in enumerate(FIVE)]
    out, md = tmp_path / "h.html", tmp_path / "h.md"
    assert cli.main(["history", *paths, "-o", str(out), "--markdown", str(md)]) == 0
    text = capsys.readouterr().out
    assert f"history of 5 run(s), 3 claim(s) (ordered by command line) written to {out}" in text
    assert "t.py::test_a: vm <= 2 * baremetal: step down (faster), verdict flip" in text
    page = out.read_text()
    assert len(re.findall(r'<img class="plot" data-claim="', page)) == 3  # one per claim
    assert 'data-claim="t.py::test_a :: vm &lt;= 2 * baremetal"' in page
    assert "step up (slower), verdict flip" in page and "step down (faster), verdict flip" in page
    assert not re.search(r'(src|href)="(https?:)?//', page) and "<script" not in page
    assert md.read_text() == historymd.render_markdown(history.history_of(paths))
    assert summary.read_text().startswith("earlier step\n\n## pytest-virtoverhead history:")


def test_cli_reads_a_directory_and_orders_by_recorded_time(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    (tmp_path / "runs").mkdir()
    save(tmp_path / "runs", "a.json", doc(claim(ratio=1.5, ci=(1.45, 1.55)), written="2026-11-30T10:00:00Z"))
    save(tmp_path / "runs", "b.json", doc(claim(), written="2026-11-30T09:00:00Z"))
    assert cli.main(["history", str(tmp_path / "runs"), "-o", str(tmp_path / "h.html")]) == 0
    out = capsys.readouterr().out
    assert "ordered by recorded time" in out and "step up (slower)" in out


def test_cli_errors(tmp_path, capsys, monkeypatch):
    good = save(tmp_path, "good.json", doc(claim()))
    other = save(tmp_path, "other.json", doc(claim(test="t.py::other")))
    (tmp_path / "bad.json").write_text("{")
    out = str(tmp_path / "h.html")
    assert cli.main(["history", good, str(tmp_path / "bad.json"), "-o", out]) == 2
    assert re.search(r"pytest-virtoverhead history: .*bad.json: not JSON", capsys.readouterr().err)
    assert cli.main(["history", good, other, "-o", out]) == 2
    assert "no claim in common" in capsys.readouterr().err
    assert cli.main(["history", good, "--tolerance", "lots", "-o", out]) == 2
    assert "tolerance must be a percentage" in capsys.readouterr().err
    assert cli.main(["history", good, "-o", str(tmp_path)]) == 2
    assert "-o/--output: cannot write" in capsys.readouterr().err
    monkeypatch.setitem(__import__("sys").modules, "matplotlib", None)
    assert cli.main(["history", good, "-o", out]) == 2
    assert "history needs matplotlib, which is not installed: pip install pytest-virtoverhead[report]" in \
        capsys.readouterr().err
    assert not (tmp_path / "h.html").exists()


def test_one_run_renders_one_point(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    good = save(tmp_path, "good.json", doc(claim(), claim(test="t.py::skipped", ratio=None, ci=None,
                                                            verdict="skipped", reason="not in this run")))
    assert cli.main(["history", good, "-o", str(tmp_path / "h.html")]) == 0
    page = (tmp_path / "h.html").read_text()
    assert "Only one run: nothing to compare yet." in page
    assert len(re.findall(r'<img class="plot"', page)) == 1
    assert "no run has an estimate for this claim" in page  # the skipped claim


def test_odd_points_still_plot():
    """An estimate outside its own interval and a fixed-cost quantity below
    zero (vm faster than baremetal) plot without error."""
    pytest.importorskip("matplotlib")
    from pytest_virtoverhead.offline import historyhtml

    fixed_cost = dict(test="t.py::test_n", text="vm <= baremetal + 1 ms", unit="s", bounds=[None, 0.001],
                      quantity="vm - baremetal")
    h = history.build(runs_of(doc(claim(ratio=1.5, ci=(1.6, 1.7)), claim(ratio=-0.002, ci=(-0.003, -0.001),
                                                                          **fixed_cost)),
                              doc(claim(ratio=1.5, ci=(1.4, 1.6)), claim(ratio=-0.001, ci=(-0.0015, -0.0005),
                                                                         **fixed_cost))))
    page = historyhtml.render_history(h)
    assert len(re.findall(r'<img class="plot"', page)) == 2
    assert "-2 ms" in page and "vm - baremetal" in page


# -- five saved runs of a real suite, in a real browser ------------------------------

SUITE = """
import time
import pytest

FACTOR = {factor}

def pause(base):
    import os
    time.sleep(base * (FACTOR if os.environ["VIRTOVERHEAD_ENV"] == "control" else 1))

@pytest.mark.virt(claims=["control <= 2.4 * baremetal", "control >= 1.5 * baremetal"])
def test_sleep():
    pause(0.004)

@pytest.mark.virt(claims=["control ~= 2 * baremetal +- 50%"])
def test_short_sleep():
    pause(0.002)
"""


def test_history_of_five_saved_runs_renders_in_headless_chromium(chromium, pytester, tmp_path):
    pytest.importorskip("matplotlib")
    # five runs of an A/A suite whose "control" is made 2x slower, then 3x
    # in the last run: a step up between runs 4 and 5
    paths = []
    for i, factor in enumerate([2, 2, 2, 2, 3], start=1):
        pytester.makepyfile(test_hist=SUITE.format(factor=factor))
        result = pytester.runpytest_subprocess("--virt-compare", "--virt-envs=baremetal,control=baremetal",
                                               "--virt-rounds=3", f"--virt-seed={i}", "-p", "no:cacheprovider",
                                               f"--virt-json=runs/run{i}.json")
        assert (pytester.path / "runs" / f"run{i}.json").exists(), result.stdout.str()[-3000:]
        paths.append(str(pytester.path / "runs" / f"run{i}.json"))
    page = tmp_path / "history.html"
    md = tmp_path / "history.md"
    assert cli.main(["history", str(pytester.path / "runs"), "-o", str(page), "--markdown", str(md)]) == 0
    h = history.history_of(paths)
    assert len(h.runs) == 5 and len(h.series) == 3
    sleep = {s.claim: s for s in h.series if s.test == "test_hist.py::test_sleep"}
    upper = sleep["control <= 2.4 * baremetal"]
    assert [p.verdict for p in upper.points] == ["pass"] * 4 + ["fail"], [p.ci for p in upper.points]
    assert upper.points[-1].step == UP and upper.points[-1].flip
    assert "step up (slower), verdict flip" in md.read_text()

    dom = chromium("--dump-dom", page.resolve().as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert len(re.findall(r'<img class="plot" data-claim="', dom.stdout)) == 3  # one per claim
    assert "test_hist.py::test_short_sleep" in dom.stdout
    shot = tmp_path / "shot.png"
    run = chromium(f"--screenshot={shot}", "--window-size=1200,3000", page.resolve().as_uri())
    assert run.returncode == 0 and shot.exists(), run.stderr[-2000:]
    import numpy as np
    from matplotlib import image

    pixels = image.imread(str(shot))[..., :3]
    assert pixels.shape[:2] == (3000, 1200)
    assert (pixels.min(axis=2) < 0.9).mean() > 0.01  # not a blank page
    # a step up is shaded light red between its two runs, inside the plots
    # only (the page's CSS has no such colour): the PNGs were decoded
    shade = np.array([1 - 0.12 * (1 - c) for c in (0xc6 / 255, 0x28 / 255, 0x28 / 255)])
    assert np.count_nonzero(np.abs(pixels - shade).max(axis=2) < 0.02) > 500
