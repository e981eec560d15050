"""The docs match the code: every option is documented, and the site builds
warning-free."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def plugin_help(pytester):
    result = pytester.runpytest_subprocess("--help")
    text = result.stdout.str()
    start = text.index("virtualization overhead (pytest-virtoverhead):")
    end = text.index("\n\n", start)
    group = text[start:end]
    options = set(re.findall(r"(--virt-[a-z-]+)", group))
    inis = set(re.findall(r"^  (virt_[a-z_]+) \(", text, re.M))
    return options, inis


def test_every_option_and_ini_key_is_documented(pytester):
    options, inis = plugin_help(pytester)
    assert len(options) > 15 and len(inis) > 5
    docs = "\n".join(p.read_text() for p in DOCS.glob("*.md"))
    missing = sorted(o for o in options | inis if o not in docs)
    assert not missing, f"undocumented: {missing}"


def test_docs_build_warning_free(tmp_path):
    pytest.importorskip("mkdocs", reason="the docs extra is not installed (pip install -e '.[docs]')")
    pytest.importorskip("mkdocstrings")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"),
         "--site-dir", str(tmp_path / "site")],
        capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "site" / "index.html").exists()
