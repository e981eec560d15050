"""What the terminal shows while compared tests run."""

import os
import pty
import re
import select
import subprocess
import sys

from virthelp import aa_args

from pytest_virtoverhead.session.events import Calling, EnvsStarting, Step, WorkerStarting
from pytest_virtoverhead.session.progress import LINES, OFF, STATUS, Progress, choose_mode, describe


def test_choose_mode():
    assert choose_mode(0, True, "xterm") == STATUS
    assert choose_mode(1, True, "xterm") == STATUS
    assert choose_mode(2, False, None) == LINES
    assert choose_mode(-1, True, "xterm") == OFF  # -q: nothing extra
    assert choose_mode(0, False, "xterm") == OFF  # a CI log: no cursor moves
    assert choose_mode(0, True, "dumb") == OFF


class FakeWriter:
    def __init__(self, line="test_x.py ", width=60):
        self._current_line = line
        self.fullwidth = width
        self.out = []

    @property
    def width_of_current_line(self):
        return len(self._current_line)

    def write(self, text, flush=False):
        self.out.append(text)
        self._current_line += text


class FakeReporter:
    def __init__(self, verbosity=0, tty=True, **kw):
        self.verbosity = verbosity
        self.isatty = lambda: tty
        self._tw = FakeWriter(**kw)
        self.lines = []

    def write_line(self, line):
        self.lines.append(line)


def test_status_is_drawn_then_erased_and_pytest_line_kept(monkeypatch):
    monkeypatch.setenv("TERM", "xterm")
    tr = FakeReporter()
    ticks = iter([100.0, 103.0, 104.0])
    p = Progress(tr, clock=lambda: next(ticks))
    assert p.mode == STATUS
    p.begin("t.py::test_a")
    p(Calling("t.py::test_a", "vm", Step(1, 10)))
    p(Calling("t.py::test_a", "baremetal", Step(1, 10)))
    p.end()
    first = " virt: [vm] round 1/10 (3s)"
    assert tr._tw.out == [first, f"\x1b[{len(first)}D\x1b[K virt: [baremetal] round 1/10 (4s)",
                          f"\x1b[{len(' virt: [baremetal] round 1/10 (4s)')}D\x1b[K"]
    assert tr._tw._current_line == "test_x.py "  # pytest's width bookkeeping is untouched
    p.end()  # nothing more to erase
    assert len(tr._tw.out) == 3


def test_status_is_clipped_to_the_room_left(monkeypatch):
    monkeypatch.setenv("TERM", "xterm")
    tr = FakeReporter(line="x" * 30, width=50)
    p = Progress(tr, clock=lambda: 0.0)
    p.begin("n")
    p(EnvsStarting(("vm", "container", "and a very long list of other environments")))
    assert len(tr._tw.out[0]) == 50 - 30 - 1 and tr._tw.out[0].endswith("…")
    narrow = FakeReporter(line="x" * 45, width=50)
    q = Progress(narrow, clock=lambda: 0.0)
    q(EnvsStarting(("vm",)))
    assert narrow._tw.out == []  # no room: nothing rather than a wrapped line


def test_lines_with_vv_and_nothing_with_q(monkeypatch):
    tr = FakeReporter(verbosity=2)
    p = Progress(tr)
    p.begin("t.py::test_a")
    p(Calling("t.py::test_a", "vm", Step(1, 1, warmup=True, process=2)))
    p.end()
    assert tr.lines == ["    virt: t.py::test_a [vm] warm-up 1/1, process 2"] and tr._tw.out == []
    quiet = FakeReporter(verbosity=-1)
    q = Progress(quiet)
    q.begin("t")
    q(Calling("t", "vm", Step(1, 1)))
    q.end()
    assert quiet.lines == [] and quiet._tw.out == []
    assert Progress(None).mode == OFF


def test_events_read_as_before():
    """The text of each event, as the round runner's strings read."""
    assert describe(EnvsStarting(("vm", "container")), "t") == "starting vm, container"
    assert describe(WorkerStarting("t", "vm", 2), "t") == "[vm] starting worker process 2"
    assert describe(Calling("t", "vm", Step(2, 3, warmup=True, process=4)), "t") == "[vm] warm-up 2/3, process 4"
    assert describe(Calling("t", "vm", Step(3, 10)), "t") == "[vm] round 3/10"
    assert describe(Calling("t", "vm", Step(11, None, open_claims=2)), "t") == \
        "[vm] round 11 (adaptive, 2 claim(s) open)"
    assert describe(Calling("u", "vm", Step(3, 10)), "t") == "u [vm] round 3/10"  # another test's: named


TEST = """
import pytest
@pytest.mark.virt()
def test_a():
    pass
"""
ARGS = aa_args(rounds=2)


def test_quiet_and_verbose_runs(pytester):
    pytester.makepyfile(test_p=TEST)
    quiet = pytester.runpytest_subprocess(*ARGS, "-q")
    quiet.assert_outcomes(passed=1)
    assert "virt:" not in quiet.stdout.str() and "\x1b[" not in quiet.stdout.str()
    loud = pytester.runpytest_subprocess(*ARGS, "-vv")
    loud.stdout.fnmatch_lines(["*virt: test_p.py::test_a starting baremetal, control*",
                               "*virt: test_p.py::test_a [[]*[]] round 2/2*"])


def test_status_line_on_a_terminal(pytester):
    pytester.makepyfile(test_p=TEST)
    master, slave = pty.openpty()
    env = dict(os.environ, TERM="xterm", COLUMNS="100")
    proc = subprocess.Popen([sys.executable, "-m", "pytest", *ARGS], cwd=pytester.path, stdin=subprocess.DEVNULL,
                            stdout=slave, stderr=slave, env=env, close_fds=True)
    os.close(slave)
    out = b""
    while True:
        ready, _, _ = select.select([master], [], [], 120)
        if not ready:
            break
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    assert proc.wait(timeout=60) == 0
    text = out.decode(errors="replace")
    assert " virt: starting baremetal, control" in text and "round 2/2" in text
    # the last status is erased before pytest writes the outcome on the same line
    line = re.sub(r"\x1b\[[0-9;]*m", "", text.split("test_p.py ", 1)[1].split("\r\n", 1)[0])
    tail = line.rsplit("\x1b[K", 1)[1]
    assert re.fullmatch(r"\. +\[100%\]", tail)
    # pytest's right-aligned progress lands where it would without the status
    assert len("test_p.py ") + len(tail) == 100 - 1  # pytest leaves the last column free


def test_pool_announces_only_the_environments_it_starts(monkeypatch):
    from types import SimpleNamespace

    from pytest_virtoverhead.envs.base import RunContext
    from pytest_virtoverhead.session.config import Settings
    from pytest_virtoverhead.session.pool import EnvironmentPool

    pool = EnvironmentPool(Settings(), RunContext(session_id="s", rootdir="."))
    monkeypatch.setattr(pool, "try_get", lambda name: (None, f"{name}: no"))
    monkeypatch.setattr(pool, "_arm_sigterm", lambda: None)
    pool._failed["vm"] = "vm: no kvm"
    pool._envs["c2"] = SimpleNamespace(start_time=1.0)  # running already
    heard = []
    assert pool.start_all(["baremetal", "c2", "vm", "container"], heard.append) == {
        "baremetal": "baremetal: no", "c2": "c2: no", "container": "container: no"}
    assert heard == [EnvsStarting(("baremetal", "container"))]
    heard.clear()
    pool.start_all(["vm"], heard.append)
    assert heard == []
