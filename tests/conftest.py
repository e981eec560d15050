"""Shared settings of the test suite.

Every pytester run in this suite is its own session, and each session
starts its worker processes anew (``--virt-processes``, default 4 per
environment, about a second each here). Runs that do not test the process
rotation itself use one (the rounds are then the units), set through PYTEST_ADDOPTS (after pytester has
cleared it) so the command line of a test still wins; tests of the rotation
pass ``--virt-processes`` explicitly.

Plain helpers the test files share (the A/A command line, a run's JSON,
claims judged on hand-made samples) are in virthelp.py, imported by name.
"""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import types

# Imported here, before any in-process pytester run: pytester drops the
# modules a run imported when it ends, and numpy cannot be imported twice in
# one process ("cannot load module more than once per process"), so a test
# file that first imported numpy inside such a run broke the next one.
try:
    import numpy  # noqa: F401
except ImportError:  # the test extra brings it (through matplotlib)
    pass
import pytest

from pytest_virtoverhead.envs import KINDS, Backend, EnvUnavailable
from pytest_virtoverhead.envs.channel import SocketTransport
from pytest_virtoverhead.wire.envvars import WATCH_PARENT_VAR


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


# -- a fake environment kind: the real worker over a socket pair ------------


class SocketPairBackend(Backend):
    """The ``fake`` kind, for tests only: the real worker
    (``python -m pytest_virtoverhead.guest.worker``) in a subprocess whose stdin
    and stdout are one end of a socket pair; the host talks over the other
    end. No image, no guest, no scratch directory: it starts in ~0.1 s, and
    dies, hangs and fails to start on request (its options)."""

    kind = "fake"
    option_help = {
        "unavailable": "start() raises EnvUnavailable with this reason",
        "crash": "start() raises RuntimeError with this message (a backend's bug)",
        "silent": "the worker never says it is ready (nor answers)",
    }

    def __init__(self, spec, ctx):
        super().__init__(spec, ctx)
        self.proc = None
        self.starts = 0
        self.exitcode = None

    def start(self):
        options = self.spec.options
        if options.get("unavailable"):
            raise EnvUnavailable(options["unavailable"])
        if options.get("crash"):
            raise RuntimeError(options["crash"])
        host, worker = socket.socketpair()
        # A silent worker ends at the first byte the host sends.
        command = ([sys.executable, "-c", "import sys; sys.stdin.buffer.read(1)"] if options.get("silent")
                   else self.worker_command())
        try:
            self.proc = subprocess.Popen(command, stdin=worker, stdout=worker, cwd=self.ctx.rootdir,
                                         env={**os.environ, WATCH_PARENT_VAR: str(os.getpid())})
        finally:
            worker.close()
        self.starts += 1
        return SocketTransport(host)

    def stop(self):
        proc, self.proc = self.proc, None
        if proc is not None:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            self.exitcode = proc.returncode

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        self.stop()

    def diagnostics(self):
        code = self.proc.poll() if self.proc is not None else self.exitcode
        return f"fake worker exit code: {code}" if code is not None else ""


@pytest.fixture
def fake_backend(monkeypatch):
    """:class:`SocketPairBackend`, registered as the ``fake`` environment
    kind for this test. (KINDS names a "module:class"; the module is one of
    its own, since ``conftest`` may name another directory's conftest.py.)"""
    module = types.ModuleType("virtoverhead_test_fake_backend")
    module.SocketPairBackend = SocketPairBackend
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setitem(KINDS, "fake", f"{module.__name__}:SocketPairBackend")
    return SocketPairBackend
