"""Issue 24 end to end (pytester, baremetal and control=baremetal): the
resource counters reach the JSON, the "why" line reaches the terminal,
Markdown and HTML, and the table's median agrees with the ratio."""

from __future__ import annotations

import json

import pytest

SUITE = '''
import mmap
import os

import pytest

PAGES = 2048  # 8 MiB of 4 KiB pages

@pytest.mark.virt(claims=["control <= 10 * baremetal"])
def test_syscalls():
    for _ in range(30000):
        os.getppid()

@pytest.mark.virt(claims=["control <= 10 * baremetal"])
def test_pages():
    m = mmap.mmap(-1, PAGES * 4096)
    for i in range(0, PAGES * 4096, 4096):
        m[i] = 1
    m.close()
'''

KEYS = {"user_seconds", "system_seconds", "voluntary_switches", "involuntary_switches",
        "minor_faults", "major_faults", "read_bytes", "write_bytes"}


def run(pytester, envs: str, *extra: str) -> tuple[pytest.RunResult, dict]:
    pytester.makepyfile(test_res=SUITE)
    result = pytester.runpytest_subprocess(
        "--virt-compare", f"--virt-envs={envs}", "--virt-rounds=4", "--virt-seed=3", "-p", "no:cacheprovider",
        "--virt-json=out.json", "--virt-markdown=out.md", *extra)
    return result, json.loads((pytester.path / "out.json").read_text())


def check_document(data: dict, env: str) -> None:
    assert data["version"] == 3
    entries = {(r["test"].split("::")[-1], r["env"]): r for r in data["results"]}
    for name in ("baremetal", env):
        sys_entry, page_entry = entries["test_syscalls", name], entries["test_pages", name]
        assert KEYS <= set(sys_entry["resources"])
        # 30,000 getppid calls: system time in every environment.
        assert sys_entry["resources"]["system_seconds"] > 0
        # 2,048 pages touched: a minor fault each (a few more for the mapping).
        assert page_entry["resources"]["minor_faults"] >= 2048 * 0.95
        assert page_entry["median_unpaired"] > 0
    vs = entries["test_pages", env]["resources_vs_baseline"]
    assert vs["baseline"]["minor_faults"] >= 2048 * 0.95 and "minor_faults" in vs["difference"]
    base_median = {t: entries[t, "baremetal"]["median"] for t in ("test_syscalls", "test_pages")}
    for t in base_median:
        entry = entries[t, env]
        lo, hi = entry["ci"]
        assert lo <= entry["median"] / base_median[t] <= hi
    for claim in data["claims"]:
        assert claim["verdict"] == "pass"
        assert claim["why"].startswith(f"why (measured per call, {env} vs baremetal): time ")
    page_why = next(c["why"] for c in data["claims"] if c["test"].endswith("test_pages"))
    assert "minor faults 2" in page_why and "CPU time" in page_why


def test_resources_and_why_against_a_control(pytester):
    result, data = run(pytester, "baremetal,control=baremetal")
    result.assert_outcomes(passed=2)
    check_document(data, "control")
    result.stdout.fnmatch_lines(["*pass*test_res.py::test_pages: control <= 10 * baremetal*",
                                 "*why (measured per call, control vs baremetal): time *minor faults 2*"])
    md = (pytester.path / "out.md").read_text()
    assert "Why, from the resource counters" in md and "minor faults 2" in md


def test_why_in_the_html_report(pytester):
    pytest.importorskip("matplotlib")
    result, data = run(pytester, "baremetal,control=baremetal", "--virt-report=out.html")
    result.assert_outcomes(passed=2)
    html = (pytester.path / "out.html").read_text()
    assert "why (measured per call, control vs baremetal)" in html
