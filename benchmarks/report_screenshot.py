"""Make docs/img/report.png: a real comparison run, its HTML report, and a
screenshot of that report in headless Chromium.

    python benchmarks/report_screenshot.py                      # baremetal,container,vm
    python benchmarks/report_screenshot.py --envs baremetal,control=baremetal   # no Docker/VM

Needs matplotlib (pip install -e '.[report]') and Debian's chromium; the
container and VM environments need what scripts/provision.sh sets up. The
run's files (report.html, run.json, bench.json) are kept with --keep DIR.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

DEMO = """
import os
import tempfile

import pytest


def primes(limit):
    found = 0
    for n in range(2, limit):
        for d in range(2, int(n ** 0.5) + 1):
            if n % d == 0:
                break
        else:
            found += 1
    return found


@pytest.mark.virt(claims=["container ~= baremetal +- 5%", "vm <= 2 * baremetal"])
def test_cpu_primes():
    assert primes(30000) == 3245


@pytest.mark.virt(claims=["container <= baremetal + 10%", "vm <= 3 * baremetal"])
def test_syscalls(benchmark):
    def calls():
        for _ in range(2000):
            os.getppid()
            os.stat(".")
    benchmark.pedantic(calls, rounds=5, iterations=1)


@pytest.mark.virt(claims=["container <= 1.2 * baremetal"])
def test_file_write_fsync():
    with tempfile.TemporaryFile() as f:
        for _ in range(8):
            f.write(b"x" * 65536)
            f.flush()
            os.fsync(f.fileno())
"""


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        raise SystemExit("no chromium: apt-get install -y --no-install-recommends chromium")
    return found


def screenshot(html: Path, png: Path, width: int = 1200, height: int = 1900) -> None:
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                        "--disable-component-update", "--disable-sync", "--no-first-run",
                        f"--user-data-dir={profile}", f"--screenshot={png}", f"--window-size={width},{height}",
                        "--hide-scrollbars", html.resolve().as_uri()],
                       check=True, capture_output=True, timeout=180)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", default="baremetal,container,vm")
    parser.add_argument("--rounds", default="8")
    parser.add_argument("--out", default=str(ROOT / "docs" / "img" / "report.png"))
    parser.add_argument("--keep", metavar="DIR", help="keep the run's files here")
    parser.add_argument("--height", type=int, default=2300)
    args = parser.parse_args(argv)
    work = Path(args.keep or tempfile.mkdtemp(prefix="virt-report-"))
    work.mkdir(parents=True, exist_ok=True)
    (work / "test_demo.py").write_text(DEMO)
    (work / "pytest.ini").write_text("[pytest]\n")
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--virt-compare", f"--virt-envs={args.envs}",
           f"--virt-rounds={args.rounds}", "--virt-report=report.html", "--virt-json=run.json",
           "--benchmark-json=bench.json", "test_demo.py"]
    print("running:", " ".join(cmd), f"(in {work})", flush=True)
    proc = subprocess.run(cmd, cwd=work)
    if not (work / "report.html").exists():
        print(f"pytest exited {proc.returncode} without a report", file=sys.stderr)
        return 1
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    screenshot(work / "report.html", out, height=args.height)
    print(f"report: {work / 'report.html'}\nscreenshot: {out}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
