"""``--virt-report``: the self-contained HTML page, and a real headless browser."""

import re

import pytest
from virthelp import aa_args

from pytest_virtoverhead.render import htmlreport

pytest.importorskip("matplotlib", reason="the HTML report needs matplotlib: pip install pytest-virtoverhead[report]")

DATA = {
    "version": 1, "seed": 5, "baseline": "baremetal", "rounds": 3, "session": "abc",
    "environments": {
        "baremetal": {"name": "baremetal", "kind": "baremetal", "cpuset": [1]},
        "vm": {"name": "vm", "kind": "vm", "accel": "tcg", "accel_reason": "KVM guest never said ready",
               "vcpus": 1, "memory_mb": 1024},
        "container": {"name": "container", "kind": "container", "unavailable": "no Docker daemon\nmore"},
    },
    "tests": [
        {"test": "t.py::test_a", "envs": ["baremetal", "vm", "container"], "outcome": "measured",
         "unavailable": {"container": "no Docker daemon"}},
        {"test": "t.py::test_b", "envs": ["baremetal", "vm"], "outcome": "measured", "unavailable": {}},
        {"test": "t.py::test_c", "envs": ["baremetal", "vm"], "outcome": "skipped", "skipped": "why", "unavailable": {}},
    ],
    "results": [
        {"test": "t.py::test_a", "env": "baremetal", "samples": [0.010, 0.011, 0.012], "median": 0.011},
        {"test": "t.py::test_a", "env": "vm", "samples": [0.07, 0.071, 0.08], "median": 0.071,
         "ratio": 6.45, "ci": [6.0, 7.0]},
        {"test": "t.py::test_a", "env": "container", "samples": [], "median": None, "unavailable": "no Docker"},
        {"test": "t.py::test_b", "env": "baremetal", "samples": [1e-6, 2e-6], "median": 1.5e-6},
        {"test": "t.py::test_b", "env": "vm", "samples": [2e-6, 3e-6], "median": 2.5e-6, "ratio": 1.67,
         "ci": [1.0, None]},
        {"test": "t.py::test_c", "env": "baremetal", "samples": [], "median": None},
    ],
    "claims": [
        {"test": "t.py::test_a", "claim": "vm <= 2 * baremetal", "env": "vm", "baseline": "baremetal",
         "ratio": 6.45, "ci": [6.0, 7.0], "verdict": "fail", "bounds": [None, 2.0]},
        {"test": "t.py::test_a", "claim": "vm ~= 6.5 * baremetal +- 10%", "env": "vm", "baseline": "baremetal",
         "ratio": 6.45, "ci": [6.0, 7.0], "verdict": "pass", "bounds": [5.85, 7.15], "p_value": 0.01},
        {"test": "t.py::test_b", "claim": "vm <= 1.5 * baremetal", "env": "vm", "baseline": "baremetal",
         "ratio": 1.67, "ci": [1.0, None], "verdict": "inconclusive", "bounds": [None, 1.5]},
    ],
}


def plots(page):
    return re.findall(r'<img class="plot" data-test="([^"]+)"', page)


def test_page_is_self_contained_with_one_plot_per_measured_test():
    page = htmlreport.render_html(DATA)
    assert plots(page) == ["t.py::test_a", "t.py::test_b"]  # test_c measured nothing
    assert "nothing was measured for this test" in page
    assert page.count('src="data:image/png;base64,') == 2
    assert not re.search(r'(src|href)="(https?:)?//', page) and "<script" not in page and "@import" not in page
    assert "<link" not in page


def test_page_shows_verdicts_and_metadata():
    page = htmlreport.render_html(DATA)
    assert '<span class="v v-fail">fail</span> <code>vm &lt;= 2 * baremetal</code>' in page
    assert 'class="v v-inconclusive"' in page and 'class="v v-pass"' in page
    assert "vm [tcg]" in page and "KVM guest never said ready" in page  # acceleration and why
    assert "unavailable: no Docker daemon" in page
    assert "<td class=num>6.450</td><td class=num>[6.000, 7.000]</td>" in page
    assert "p=0.01" in page


def test_missing_matplotlib_says_how_to_get_it(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "matplotlib", None)
    with pytest.raises(htmlreport.ReportUnavailable, match=r"pip install pytest-virtoverhead\[report\]"):
        htmlreport.require_matplotlib()


def test_option_errors_clearly_without_matplotlib(pytester):
    pytester.makeconftest("import sys\nsys.modules['matplotlib'] = None\n")
    pytester.makepyfile("def test_a():\n    pass\n")
    result = pytester.runpytest_subprocess("--virt-report=r.html", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--virt-report needs matplotlib*pip install pytest-virtoverhead[[]report[]]*"])


TESTS = """
import os, time
import pytest

def pause(base):
    time.sleep(base * (2 if os.environ["VIRTOVERHEAD_ENV"] == "control" else 1))

@pytest.mark.virt(claims=["control <= 3 * baremetal", "control >= 1.5 * baremetal"])
def test_one():
    pause(0.005)

@pytest.mark.virt(claims=["control ~= baremetal +- 5%"])
def test_two(benchmark):
    benchmark.pedantic(pause, args=(0.001,), rounds=3)

def test_unmarked():
    pass
"""


@pytest.fixture
def report_run(pytester):
    pytester.makepyfile(test_r=TESTS)
    result = pytester.runpytest_subprocess(*aa_args("--virt-report=out/r.html", "--virt-json=v.json", rounds=3, seed=2))
    return pytester, result


def test_report_from_a_run(report_run):
    pytester, result = report_run
    result.stdout.fnmatch_lines(["*HTML report written to out/r.html*"])
    page = (pytester.path / "out" / "r.html").read_text()
    assert plots(page) == ["test_r.py::test_one", "test_r.py::test_two"]
    # the CLI renders the same run from its JSON
    from pytest_virtoverhead.offline import cli

    assert cli.main(["report", str(pytester.path / "v.json"), "-o", str(pytester.path / "again.html")]) == 0
    assert plots((pytester.path / "again.html").read_text()) == plots(page)


def test_report_renders_in_headless_chromium(chromium, report_run, tmp_path):
    pytester, _ = report_run
    url = (pytester.path / "out" / "r.html").resolve().as_uri()
    dom = chromium("--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert len(re.findall(r"<img[^>]*class=\"plot\"", dom.stdout)) == 2  # one per marked test
    assert "test_r.py::test_one" in dom.stdout and "test_unmarked" not in dom.stdout
    shot = tmp_path / "shot.png"
    run = chromium(f"--screenshot={shot}", "--window-size=1200,2000", url)
    assert run.returncode == 0 and shot.exists(), run.stderr[-2000:]
    import numpy as np
    from matplotlib import image

    pixels = image.imread(str(shot))[..., :3]
    assert pixels.shape[:2] == (2000, 1200)
    assert (pixels.min(axis=2) < 0.9).mean() > 0.01  # not a blank page
    # the samples' blue (#1e88e5, drawn half transparent) is only in the plots: the PNGs were decoded
    r, g, b = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    assert np.count_nonzero((b - r > 0.3) & (b - g > 0.1)) > 20


def test_page_comes_from_the_package_templates():
    from importlib import resources

    templates = resources.files("pytest_virtoverhead.render") / "templates"
    assert (templates / "report.html.j2").is_file() and (templates / "_base.html.j2").is_file()
    page = htmlreport.render_html(DATA)
    # values are escaped by the template engine, not by hand
    data = {**DATA, "claims": [{**DATA["claims"][0], "claim": "vm <= 2 * <b>baremetal</b>"}]}
    assert "<code>vm &lt;= 2 * &lt;b&gt;baremetal&lt;/b&gt;</code>" in htmlreport.render_html(data)
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")


def test_missing_jinja2_says_how_to_get_it(monkeypatch):
    from pytest_virtoverhead.render import templating

    monkeypatch.setitem(__import__("sys").modules, "jinja2", None)
    templating.environment.cache_clear()
    try:
        with pytest.raises(htmlreport.ReportUnavailable, match=r"Jinja2.*pip install pytest-virtoverhead\[report\]"):
            htmlreport.require_matplotlib()
        with pytest.raises(htmlreport.ReportUnavailable, match="Jinja2"):
            htmlreport.render_html(DATA)
        with pytest.raises(templating.TemplatesUnavailable, match="Jinja2"):
            templating.render("report.html.j2")
    finally:
        monkeypatch.undo()
        templating.environment.cache_clear()


def test_option_errors_clearly_without_jinja2(pytester):
    pytester.makeconftest("import sys\nsys.modules['jinja2'] = None\n")
    pytester.makepyfile("def test_a():\n    pass\n")
    result = pytester.runpytest_subprocess("--virt-report=r.html", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*--virt-report: HTML output needs Jinja2*pip install pytest-virtoverhead[[]report[]]*"])


def test_page_says_how_the_verdicts_were_reached():
    """The same line as the terminal's (textfmt.method_line), from the JSON's verdict_method."""
    holm = dict(DATA, verdict_method={"confidence": 0.95, "correction": "holm", "family_size": 7})
    assert "verdicts: Holm&#39;s correction over 7 claims, family-wise 95% (--virt-correction=holm)" \
        in htmlreport.render_html(holm)
    plain = dict(DATA, verdict_method={"confidence": 0.99, "correction": "none", "family_size": 2})
    assert "verdicts: each claim at 99%, no correction over the run&#39;s 2 claims" in htmlreport.render_html(plain)
    assert "verdicts:" not in htmlreport.render_html(DATA)  # a run saved before verdict_method
