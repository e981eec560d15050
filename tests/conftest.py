"""Shared settings of the test suite.

Every pytester run in this suite is its own session, and each session
starts its worker processes anew (``--virt-processes``, default 4 per
environment, about a second each here). Runs that do not test the process
rotation itself use one (the rounds are then the units), set through PYTEST_ADDOPTS (after pytester has
cleared it) so the command line of a test still wins; tests of the rotation
pass ``--virt-processes`` explicitly.
"""

import shutil
import subprocess
import tempfile

# Imported here, before any in-process pytester run: pytester drops the
# modules a run imported when it ends, and numpy cannot be imported twice in
# one process ("cannot load module more than once per process"), so a test
# file that first imported numpy inside such a run broke the next one.
try:
    import numpy  # noqa: F401
except ImportError:  # the test extra brings it (through matplotlib)
    pass
import pytest


@pytest.fixture(autouse=True)
def _two_worker_processes(request, monkeypatch):
    if "pytester" in request.fixturenames:
        request.getfixturevalue("pytester")
    monkeypatch.setenv("PYTEST_ADDOPTS", "--virt-processes=1")


# -- headless Chromium (the HTML pages are checked in a real browser) --------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def run_chromium(*args, timeout=120):
    """Run headless Chromium with a throwaway profile and no network
    services; the CompletedProcess (text output)."""
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                               "--disable-background-networking", "--disable-component-update", "--disable-sync",
                               "--no-first-run", f"--user-data-dir={profile}", *args],
                              capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def chromium():
    """:func:`run_chromium`, or a skip saying how to get Chromium."""
    if CHROMIUM is None:
        pytest.skip("no chromium: apt-get install -y --no-install-recommends chromium")
    return run_chromium
