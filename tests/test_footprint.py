"""Footprint figures, what an environment adds over the baseline, the
footprint claim form and its errors, the terminal section and the JSON
(baremetal environments only: no Docker or libvirt needed;
tests/integration/test_footprint_envs.py has the real ones)."""

import json
import os
import shutil
import subprocess
import sys
import tempfile

import pytest
from virthelp import aa_args

from pytest_virtoverhead import footprint
from pytest_virtoverhead.footprint import FAIL, INCONCLUSIVE, PASS, SKIPPED, Reading, Tracker
from pytest_virtoverhead.judge.claims import ClaimError, parse_claim

MIB = 1 << 20


# -- the grammar -------------------------------------------------------------


@pytest.mark.parametrize("text, left, op, right, factor, offset", [
    ("vm.memory >= 4 * container.memory", "vm.memory", ">=", "container.memory", 4, 0),
    ("vm.memory>=container.memory*4", "vm.memory", ">=", "container.memory", 4, 0),
    ("container.start <= 0.5 s", "container.start", "<=", None, 1, 0.5),
    ("container.start < 300 ms", "container.start", "<", None, 1, 0.3),
    ("vm.storage > 64 MiB", "vm.storage", ">", None, 1, 64 * MIB),
    ("vm.storage > 1 GB", "vm.storage", ">", None, 1, 1e9),
    ("vm.memory <= container.memory + 10%", "vm.memory", "<=", "container.memory", 1.1, 0),
    ("vm.memory >= container.memory - 10%", "vm.memory", ">=", "container.memory", 0.9, 0),
    ("vm.memory <= 2 * container.memory + 100 MiB", "vm.memory", "<=", "container.memory", 2, 100 * MIB),
    ("vm.start >= container.start + 1 s", "vm.start", ">=", "container.start", 1, 1.0),
    ("vm.cpu_rate <= 50%", "vm.cpu_rate", "<=", None, 1, 0.5),
    ("vm.guest_memory <= vm.memory", "vm.guest_memory", "<=", "vm.memory", 1, 0),
])
def test_claim_forms(text, left, op, right, factor, offset):
    c = footprint.parse_claim(text)
    assert f"{c.left.env}.{c.left.metric}" == left
    assert c.op == op
    assert (f"{c.right.env}.{c.right.metric}" if c.right else None) == right
    assert c.factor == pytest.approx(factor)
    assert c.offset == pytest.approx(offset)


@pytest.mark.parametrize("text, column, message", [
    ("vm.memry >= 4 * container.memory", 4, "unknown metric 'memry'"),
    ("vm.memory = 4 * container.memory", 11, "unexpected character '='"),
    ("vm.memory ~= container.memory", 11, "'~=' is not a footprint operator"),
    ("vm.memory >= 4 x container.memory", 16, "unknown unit 'x'; this metric is a size"),
    ("vm.memory >= 4 * container", 27, "expected '.' and a metric after 'container'"),
    ("vm.memory >= 4 * container.start", 18, "do not compare"),
    ("container.start <= 0.5", 23, "expected a unit after 0.5"),
    ("container.start <= 0.5 MiB", 24, "'MiB' is a size, but this metric is a time"),
    ("container.start <= 5 min", 22, "unknown unit 'min'"),
    ("vm.storage >= 0 MiB", 15, "a bound must be positive"),
    ("vm.memory >= 0 * container.memory", 14, "the factor must be positive"),
    ("vm.memory >= 4 * container.memory 7", 35, "unexpected '7' after the end"),
    ("vm.cpu_rate <= 0.5", 19, "expected '%' after 0.5"),
    ("vm.", 4, "expected a metric after 'vm.'"),
])
def test_claim_errors_name_the_column(text, column, message):
    with pytest.raises(ClaimError) as info:
        footprint.parse_claim(text)
    assert info.value.column == column, str(info.value)
    assert message in info.value.reason
    # The caret sits under the column, as a time claim's does.
    lines = str(info.value).splitlines()
    assert lines[2].index("^") - 4 == column - 1


def test_unknown_environment_names_its_column():
    claim = footprint.parse_claim("vm.memory >= 4 * contaner.memory")
    with pytest.raises(ClaimError) as info:
        footprint.check_envs(claim, ["baremetal", "vm"], {"container"})
    assert info.value.column == 18 and "unknown environment 'contaner'" in info.value.reason
    assert footprint.check_envs(footprint.parse_claim("vm.memory >= 4 * container.memory"),
                                ["baremetal", "vm"], {"container"}) == ["container"]


def test_a_time_claim_pointing_at_a_footprint_says_where_it_goes():
    with pytest.raises(ClaimError) as info:
        parse_claim("vm.memory >= 4 * container.memory")
    assert info.value.column == 3 and "virt_footprint_claims" in info.value.reason
    # Numbers with a decimal point are still time claims.
    assert parse_claim("container <= 1.05 * baremetal").upper == pytest.approx(1.05)


# -- verdicts ----------------------------------------------------------------


def fps(**envs):
    return {name: {"kind": name, "figures": figs} for name, figs in envs.items()}


def fig(value, unit="B", samples=None):
    out = {"value": value, "unit": unit, "source": "test"}
    if samples is not None:
        out.update(samples=samples, repeated=True)
    return out


FPS = fps(vm={"memory_peak": fig(800 * MIB), "start": fig(3.0, "s", [2.0, 3.0, 4.0]),
              "storage": fig(300 * MIB)},
          container={"memory_peak": fig(100 * MIB), "start": fig(0.4, "s", [0.4]),
                     "storage": fig(31)})


@pytest.mark.parametrize("text, verdict", [
    ("vm.memory >= 4 * container.memory", PASS),
    ("vm.memory >= 10 * container.memory", FAIL),
    ("container.start <= 0.5 s", PASS),
    ("container.start <= 300 ms", FAIL),
    # Three starts of 2-4 s: all above 1 s, all below 5 s, straddling 3.5 s.
    ("vm.start >= 1 s", PASS),
    ("vm.start >= 5 s", FAIL),
    ("vm.start <= 3.5 s", INCONCLUSIVE),
    ("vm.start >= 5 * container.start", PASS),
    ("vm.start >= 8 * container.start", INCONCLUSIVE),
    ("vm.start >= 11 * container.start", FAIL),
    ("vm.memory <= container.memory + 700 MiB", PASS),
    ("vm.memory < container.memory + 700 MiB", FAIL),
])
def test_verdicts(text, verdict):
    res = footprint.evaluate(footprint.parse_claim(text), FPS)
    assert res["verdict"] == verdict, res


def test_ratio_and_range_in_the_result():
    res = footprint.evaluate(footprint.parse_claim("vm.start >= 8 * container.start"), FPS)
    assert res["observed"] == [2.0, 4.0] and res["n"] == 3
    assert res["ratio"] == pytest.approx(7.5) and res["ratio_range"] == pytest.approx([5.0, 10.0])
    line = footprint.claim_line(res)
    assert line.startswith("inconclusive  vm.start >= 8 * container.start")
    assert "ratio 7.5 [5, 10]" in line


def test_skipped_when_not_measured():
    res = footprint.evaluate(footprint.parse_claim("container.guest_memory <= 1 GiB"), FPS)
    assert res["verdict"] == SKIPPED and "not measured" in res["reason"]
    res = footprint.evaluate(footprint.parse_claim("vm2.memory <= 1 GiB"), FPS)
    assert res["verdict"] == SKIPPED and "not in this run" in res["reason"]


# -- the tracker and the readers ---------------------------------------------


def test_tracker_figures_and_sources():
    t = Tracker("b", "baremetal")
    t.on_start(0.05, {"memory": Reading(10 * MIB, "B", "rss"), "memory_peak": Reading(12 * MIB, "B", "hwm"),
                      "cpu": Reading(0.02, "s", "stat")}, {"scratch": Reading(0, "B", "stat /tmp/x")})
    t.on_calls(0.02, 0.52, 0.6)
    t.on_sample({"memory": Reading(50 * MIB, "B", "rss"), "memory_peak": Reading(60 * MIB, "B", "hwm"),
                 "cpu": Reading(0.6, "s", "stat")})
    t.on_end({"memory": Reading(40 * MIB, "B", "rss"), "cpu": Reading(0.7, "s", "stat")})
    f = t.to_json()["figures"]
    assert f["memory_idle"] == {"value": 10 * MIB, "unit": "B", "source": "rss"}
    assert f["memory_peak"]["value"] == 60 * MIB and f["memory_peak"]["source"] == "hwm"
    assert f["memory_end"]["value"] == 40 * MIB
    assert f["cpu"]["value"] == pytest.approx(0.2) and f["cpu_start"]["value"] == 0.02
    assert f["storage"]["parts"]["scratch"]["source"] == "stat /tmp/x"
    assert all(fg.get("source") for fg in f.values())
    lines = footprint.section_lines({"b": t.to_json()})
    assert any("memory peak" in ln and "60 MiB" in ln and "[hwm]" in ln for ln in lines)


def test_readers_on_this_process():
    rss, hwm, n = footprint.tree_memory(os.getpid())
    assert n >= 1 and 0 < rss <= hwm
    assert footprint.tree_cpu_seconds(os.getpid()) > 0
    view = footprint.guest_memory()
    assert 0 < view["used"] < view["total"]
    assert footprint.path_bytes(__file__)[1] == os.path.getsize(__file__)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)"])
    try:
        assert child.pid in footprint.descendants(os.getpid())
    finally:
        child.kill()
        child.wait()


# -- what an environment adds over the baseline (hand-computed) --------------


def figs(start, idle, peak, cpu, procs):
    return {"start": {"value": start, "unit": "s", "samples": [start], "repeated": True},
            "memory_idle": {"value": idle, "unit": "B"}, "memory_peak": {"value": peak, "unit": "B"},
            "cpu": {"value": cpu, "unit": "s"},
            "process_start": {"value": 0.2, "unit": "s", "samples": [0.2] * procs, "repeated": True}}


def test_added_figures_by_hand():
    # The host: 12 workers, 180 MIB at peak, 0.8 s of CPU outside calls.
    # A VM with 4 workers: 900 MIB, 2.0 s. The host's for 4 workers: 60 MIB
    # and 0.267 s, so the VM adds 840 MIB and 1.733 s; it starts in 3 s
    # against 0.05 s (+2.95 s); idle 400 MIB against 12 MIB (+388 MIB).
    fps = {"baremetal": {"kind": "baremetal", "figures": figs(0.05, 12 * MIB, 180 * MIB, 0.8, 12)},
           "vm": {"kind": "vm", "figures": figs(3.0, 400 * MIB, 900 * MIB, 2.0, 4)},
           "c": {"kind": "container", "figures": figs(0.15, 14 * MIB, 190 * MIB, 0.9, 12)}}
    footprint.add_overheads(fps, "baremetal")
    vm = fps["vm"]["figures"]
    assert vm["memory_peak_added"]["value"] == 840 * MIB
    assert vm["cpu_added"]["value"] == pytest.approx(2.0 - 0.8 * 4 / 12)
    assert vm["start_added"]["value"] == pytest.approx(2.95)
    assert vm["memory_idle_added"]["value"] == 388 * MIB
    assert "baremetal's 180 MiB for 12 worker processes, scaled to 4: 60 MiB" in vm["memory_peak_added"]["source"]
    assert fps["c"]["figures"]["memory_peak_added"]["value"] == 10 * MIB
    assert "memory_peak_added" not in fps["baremetal"]["figures"]
    # Claims on the added figures.
    claim = footprint.parse_claim("vm.memory_added >= 4 * c.memory_added")
    res = footprint.evaluate(claim, fps)
    assert res["verdict"] == "pass" and res["ratio"] == pytest.approx(84.0)
    assert footprint.evaluate(footprint.parse_claim("vm.start_added >= 5 s"), fps)["verdict"] == "fail"


def test_no_worker_count_no_scaled_figure():
    base = figs(0.05, 12 * MIB, 180 * MIB, 0.8, 12)
    mine = figs(0.1, 13 * MIB, 200 * MIB, 1.0, 4)
    del mine["process_start"]
    out = footprint.added_figures(mine, base, "baremetal")
    assert set(out) == {"start_added", "memory_idle_added"}


def test_section_shows_the_added_rows():
    fps = {"baremetal": {"kind": "baremetal", "figures": figs(0.05, 12 * MIB, 180 * MIB, 0.8, 12)},
           "c": {"kind": "container", "figures": figs(0.15, 14 * MIB, 190 * MIB, 0.9, 12)}}
    footprint.add_overheads(fps, "baremetal")
    lines = footprint.section_lines(fps)
    assert any(line.strip().startswith("memory peak added") and "10 MiB" in line for line in lines)


# -- end to end, with pytester -------------------------------------------------


TEST = """
import pytest

@pytest.mark.virt(claims=["control <= 2 * baremetal"])
def test_sum():
    sum(range(20000))
"""

ARGS = aa_args("--virt-processes=1", "--virt-warmup=0", "--virt-cpus=all", rounds=2)


def test_section_json_and_claims(pytester):
    pytester.makepyfile(test_fp=TEST)
    pytester.makeini("""
        [pytest]
        virt_footprint_claims =
            control.memory <= 3 * baremetal.memory
            baremetal.start <= 1 ms
            vm.memory >= 4 * baremetal.memory
    """)
    out = pytester.path / "out.json"
    result = pytester.runpytest_subprocess(*ARGS, f"--virt-json={out}",
                                           "--virt-footprint-claim=control.start <= 30 s")
    text = result.stdout.str()
    assert "footprint (what each environment holds on the host; [source]):" in text
    for label in ("start", "memory idle", "memory peak", "memory end", "CPU outside calls", "storage"):
        assert any(line.strip().startswith(label) and "[" in line for line in text.splitlines()), label
    assert "/proc/<pid>/status VmRSS" in text
    assert "pass          control.memory <= 3 * baremetal.memory" in text
    assert "FAIL          baremetal.start <= 1 ms" in text
    assert "skipped       vm.memory >= 4 * baremetal.memory  (vm: not in this run)" in text
    assert "pass          control.start <= 30 s" in text
    # A failed footprint claim gates the run (virt_gate defaults to true).
    assert result.ret == 1
    data = json.loads(out.read_text())
    fp = data["footprint"]
    assert set(fp["environments"]) == {"baremetal", "control"}
    figs = fp["environments"]["baremetal"]["figures"]
    for name in ("start", "memory_idle", "memory_peak", "memory_end", "cpu", "storage"):
        assert figs[name]["source"] and figs[name]["unit"] in ("s", "B"), name
    assert figs["memory_peak"]["value"] >= figs["memory_idle"]["value"] > 0
    verdicts = {c["claim"]: c["verdict"] for c in fp["claims"]}
    assert verdicts == {"control.memory <= 3 * baremetal.memory": "pass", "baremetal.start <= 1 ms": "fail",
                        "vm.memory >= 4 * baremetal.memory": "skipped", "control.start <= 30 s": "pass"}


def test_no_gate_makes_a_failed_footprint_claim_a_finding(pytester):
    pytester.makepyfile(test_fp=TEST)
    result = pytester.runpytest_subprocess(*ARGS, "--virt-no-gate", "--virt-footprint-claim=baremetal.start <= 1 us")
    assert "FAIL          baremetal.start <= 1 us" in result.stdout.str()
    assert result.ret == 0


@pytest.mark.parametrize("where", ["ini", "cli"])
def test_parse_error_is_a_usage_error_with_the_column(pytester, where):
    pytester.makepyfile(test_fp=TEST)
    bad = "control.memory >= 4 x baremetal.memory"
    args = list(ARGS)
    if where == "ini":
        pytester.makeini(f"[pytest]\nvirt_footprint_claims =\n    {bad}\n")
        source = "virt_footprint_claims (ini)"
    else:
        args.append(f"--virt-footprint-claim={bad}")
        source = "--virt-footprint-claim"
    result = pytester.runpytest_subprocess(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert f"{source}: invalid claim at column 21: unknown unit 'x'" in err
    assert "    " + bad in err and "                        ^" in err


def test_unknown_environment_is_a_usage_error(pytester):
    pytester.makepyfile(test_fp=TEST)
    result = pytester.runpytest_subprocess(*ARGS, "--virt-footprint-claim=nosuch.memory <= 1 GiB")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "invalid claim at column 1: unknown environment 'nosuch'" in result.stderr.str()


def test_footprint_claim_on_a_marker_says_where_it_goes(pytester):
    pytester.makepyfile(test_fp="""
        import pytest

        @pytest.mark.virt(claims=["control.memory <= 2 * baremetal.memory"])
        def test_sum():
            pass
    """)
    result = pytester.runpytest_subprocess(*ARGS)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "invalid claim at column 8: a footprint claim (ENV.METRIC)" in result.stderr.str()


def test_html_report_has_the_footprint_section(pytester):
    pytest.importorskip("matplotlib")
    pytest.importorskip("jinja2")
    pytester.makepyfile(test_fp=TEST)
    out, page = pytester.path / "out.json", pytester.path / "r.html"
    result = pytester.runpytest_subprocess(*ARGS, f"--virt-json={out}", f"--virt-report={page}",
                                           "--virt-footprint-claim=control.start <= 30 s")
    assert result.ret == 0, result.stdout.str()
    html = page.read_text()
    assert '<section class="footprint" id="footprint"><h2>Footprint</h2>' in html
    assert html.count('<img class="footprint-plot"') == 1
    assert "/proc/&lt;pid&gt;/status VmHWM" in html  # sources, escaped
    assert "<code>control.start &lt;= 30 s</code>" in html
    # The per-test plots are still one per test.
    assert html.count('<img class="plot"') == 1
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        return
    # In a real browser (headless Chromium, no network): the section is in the DOM.
    with tempfile.TemporaryDirectory() as profile:
        dom = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                              "--disable-background-networking", f"--user-data-dir={profile}", "--dump-dom",
                              page.resolve().as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert 'id="footprint"' in dom.stdout and 'class="footprint-plot"' in dom.stdout
    assert "memory peak" in dom.stdout
