"""What the terminal shows while a compared test runs (VM boots, rounds):
the pool's and the round runner's events (:mod:`.events`) as text.

Three modes, from pytest's verbosity and the terminal:

- ``lines`` (``-vv``): one line per event, as pytest's own verbose output;
- ``status`` (a TTY, default verbosity or ``-v``): a short status written
  after what pytest has already put on the current line (``test_x.py .``),
  redrawn in place and erased before pytest writes the outcome, so pytest's
  own output is left exactly as it would be;
- ``off`` (``-q``, or output that is not a terminal: CI logs): nothing.

The status is drawn with relative cursor moves (``ESC [ n D`` and
``ESC [ K``, as any VT100-compatible terminal has them) and clipped to the
room left on the line, so it never wraps.
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable

from .events import EnvsStarting, Event, WorkerStarting

OFF, STATUS, LINES = "off", "status", "lines"


def choose_mode(verbosity: int, isatty: bool, term: str | None) -> str:
    if verbosity > 1:
        return LINES
    if verbosity < 0 or not isatty or term == "dumb":
        return OFF
    return STATUS


def describe(event: Event, nodeid: str = "") -> str:
    """An event as the terminal shows it: ``starting vm, container``,
    ``[vm] starting worker process 2``, ``[vm] warm-up 1/1, process 2``,
    ``[vm] round 3/10``, ``[vm] round 11 (adaptive, 2 claim(s) open)``;
    prefixed by the event's test unless it is ``nodeid`` (shown already)."""
    if isinstance(event, EnvsStarting):
        return f"starting {', '.join(event.names)}"
    if isinstance(event, WorkerStarting):
        text = f"[{event.env}] starting worker process {event.process}"
    else:
        step = event.step
        if step.warmup:
            what = f"warm-up {step.index}/{step.total}, process {step.process}"
        elif step.total is None:
            what = f"round {step.index} (adaptive, {step.open_claims} claim(s) open)"
        else:
            what = f"round {step.index}/{step.total}"
        text = f"[{event.env}] {what}"
    return text if event.nodeid == nodeid else f"{event.nodeid} {text}"


class Progress:
    """The listener of the pool's and the Comparator's events."""

    def __init__(self, reporter: Any | None, clock: Callable[[], float] = time.monotonic):
        self.tr = reporter
        self.clock = clock
        self.tw = getattr(reporter, "_tw", None) if reporter is not None else None
        if reporter is None:
            self.mode = OFF
        else:
            isatty = reporter.isatty
            isatty = bool(isatty() if callable(isatty) else isatty)
            self.mode = choose_mode(reporter.verbosity, isatty, os.environ.get("TERM"))
        if self.mode == STATUS and not hasattr(self.tw, "_current_line"):
            self.mode = OFF  # a pytest whose writer we cannot keep in step with
        self.nodeid = ""
        self.started = 0.0
        self._shown = 0  # width of the status now on screen
        self._line = ""  # what pytest had on the line before the status
        self._room = 0

    # -- the plugin's calls ------------------------------------------------

    def begin(self, nodeid: str) -> None:
        self.nodeid = nodeid
        self.started = self.clock()

    def __call__(self, event: Event) -> None:
        self._emit(describe(event, self.nodeid))

    def end(self) -> None:
        """Erase the status before pytest reports the outcome."""
        if self._shown:
            self._write(f"\x1b[{self._shown}D\x1b[K")
            self._shown = 0

    # -- drawing -----------------------------------------------------------

    def _emit(self, text: str) -> None:
        if self.mode == LINES:
            self.tr.write_line(f"    virt: {self.nodeid + ' ' if self.nodeid else ''}{text}")
        elif self.mode == STATUS:
            self._status(text)

    def _status(self, text: str) -> None:
        elapsed = self.clock() - self.started if self.started else 0.0
        if not self._shown:
            self._line = self.tw._current_line
        status = f" virt: {text} ({elapsed:.0f}s)"
        room = self.tw.fullwidth - self.tw.width_of_current_line - 1 if not self._shown else self._room
        self._room = room
        if room < 12:
            return
        if len(status) > room:
            status = status[: room - 1] + "…"
        erase = f"\x1b[{self._shown}D\x1b[K" if self._shown else ""
        self._write(erase + status)
        self._shown = len(status)

    def _write(self, text: str) -> None:
        self.tw.write(text, flush=True)
        # Keep pytest's idea of the current line (it right-aligns "[ 50%]"
        # from it) as if the status had never been written.
        self.tw._current_line = self._line
