"""benchmarks/calibration.py: a smoke run (it runs and writes its JSON; no
timing is asserted) and its pure helpers (section replacement in
RESULTS.md, reading `pytest-virtoverhead compare` output, quantiles)."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "calibration.py"


@pytest.fixture(scope="module")
def cal():
    spec = importlib.util.spec_from_file_location("calibration_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quick_aa_call_runs_and_writes_json(tmp_path):
    out = tmp_path / "cal.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--part", "aa-call", "--sessions", "2",
                           "--out-dir", str(tmp_path / "work"), "--json", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    data = json.loads(out.read_text())
    assert list(data["parts"]) == ["aa-call"]
    part = data["parts"]["aa-call"]
    assert len(part["sessions"]) == 2
    assert {s["seed"] for s in part["sessions"]} == {1000, 1001}
    for s in part["sessions"]:
        assert Path(s["json"]).exists(), s
    summary = part["summary"]["control/baremetal"]
    assert summary["sessions"] == 2
    assert data["machine"]["cores"] and data["uptime_before"] and data["uptime_after"]
    assert "cpu" in data["steal"]
    assert "95% CI covers 1.0" in proc.stdout


def test_help():
    proc = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "--part" in proc.stdout and "--resummarize" in proc.stdout


def test_replace_section_keeps_other_sections(cal, tmp_path):
    path = tmp_path / "RESULTS.md"
    path.write_text("# Harness performance on this machine\n\ntable\n")
    cal.replace_section(str(path), f"{cal.BEGIN}\n# Verdict calibration\n\nfirst\n{cal.END}\n")
    text = path.read_text()
    assert text.startswith("# Harness performance on this machine\n\ntable\n")
    assert "first" in text
    path.write_text(text + "\n# Another section\n\nkept\n")
    cal.replace_section(str(path), f"{cal.BEGIN}\n# Verdict calibration\n\nsecond\n{cal.END}\n")
    text = path.read_text()
    assert "first" not in text and "second" in text
    assert text.count("# Verdict calibration") == 1
    assert "# Harness performance" in text and "# Another section\n\nkept" in text


def test_replace_section_without_markers_replaces_to_next_heading(cal, tmp_path):
    path = tmp_path / "RESULTS.md"
    path.write_text("# A\n\na\n\n# Verdict calibration\n\nold\n\n# B\n\nb\n")
    cal.replace_section(str(path), f"{cal.BEGIN}\n# Verdict calibration\n\nnew\n{cal.END}\n")
    text = path.read_text()
    assert "old" not in text and "new" in text
    assert text.startswith("# A\n\na\n\n") and text.endswith("# B\n\nb\n")


def test_replace_section_creates_the_file(cal, tmp_path):
    path = tmp_path / "RESULTS.md"
    cal.replace_section(str(path), f"{cal.BEGIN}\n# Verdict calibration\n{cal.END}\n")
    assert path.read_text().startswith(cal.BEGIN)


def test_read_comparison_json_rows(cal, tmp_path):
    doc = {"rows": [
        {"test": "t", "env": "c", "verdict": "pass", "ci": [0.9, 0.99], "regression": False},  # ok (better)
        {"test": "t", "env": "d", "verdict": "fail", "ci": [1.06, 1.2], "regression": True},  # WORSE
        {"test": "u", "env": "c", "verdict": "pass", "ci": [0.97, 1.03], "regression": False},
        {"test": "u", "env": "d", "flag": "better", "ci": [0.97, 1.03]},  # the tool's own word wins
    ], "claims": [{"test": "t"}]}
    (tmp_path / "c.json").write_text(json.dumps(doc))
    out = cal.read_comparison(str(tmp_path / "c.json"), "", "")
    assert (out["source"], out["rows"], out["better"], out["worse"]) == ("json", 4, 2, 1)
    assert out["ci_excludes_1"] == 2 and out["claim_changes"] == 1


def test_read_comparison_text_fallback(cal, tmp_path):
    text = """A = a.json
B = b.json
verdict per test ...

test  env        ratio A  ratio B  change  B/A 95% CI      verdict
----  ---------  -------  -------  ------  --------------  -----------
t     control      1.000    0.990   -1.0%  [0.950, 1.030]  ok
t     container    1.020    0.930   -8.8%  [0.850, 0.990]  ok (better)
u     container    1.000    1.100  +10.0%  [1.060, 1.140]  WORSE

no regression
"""
    out = cal.read_comparison(str(tmp_path / "missing.json"), text, "")
    assert (out["source"], out["rows"], out["better"], out["worse"]) == ("text", 3, 1, 1)
    bad = cal.read_comparison(str(tmp_path / "missing.json"), "", "compare: unsupported version 2\n")
    assert bad["rows"] == 0 and "unsupported" in bad["problem"]


def test_quantiles_and_half_width(cal):
    assert cal.quantile([1, 2, 3, 4, 5], 0.5) == 3
    assert cal.quantile([1.0, 2.0], 0.1) == pytest.approx(1.1)
    assert cal.rel_half_width(1.0, [0.98, 1.02]) == pytest.approx(0.02)
    assert cal.covers([0.99, 1.01]) is True and cal.covers([1.01, 1.02]) is False and cal.covers(None) is None
