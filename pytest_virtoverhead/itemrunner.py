"""Runs collected pytest items inside the worker, on request.

The worker starts one in-process pytest session per host session with the
node ids it will be asked for. Once collected, :class:`ItemServer` takes over
pytest's run-test loop (as pytest-xdist's workers do) and runs an item each
time the host sends ``item``, so a test module is imported and collected once
however many rounds follow. The sample of a round is the call phase's wall
time, or the samples of pytest-benchmark's ``benchmark`` fixture when the
test used it.
"""

from __future__ import annotations

import gc
import os
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # pragma: no cover
    from .worker import Worker

from .work import take_work
from .worker import NO_REPLY


def _longrepr_text(report: Any) -> str:
    longrepr = report.longrepr
    if longrepr is None:
        return ""
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # a skip
        return str(longrepr[2])
    return str(longrepr)


def _benchmark_samples(item: pytest.Item) -> list[float] | None:
    funcargs = getattr(item, "funcargs", None) or {}
    fixture = funcargs.get("benchmark")
    stats = getattr(fixture, "stats", None)
    data = getattr(getattr(stats, "stats", None), "data", None)
    if not data:
        return None
    return [float(x) for x in data]


class ItemServer:
    def __init__(self, worker: "Worker", session_msg_id: Any):
        self.worker = worker
        self.session_msg_id = session_msg_id
        self.items: dict[str, pytest.Item] = {}
        self.collect_errors: list[dict[str, str]] = []
        self.started = False
        self.end_msg: dict | None = None
        self._reports: list[Any] = []
        self._bench: list[float] | None = None

    # -- pytest hooks -------------------------------------------------------

    def pytest_collectreport(self, report: Any) -> None:
        if report.failed:
            self.collect_errors.append({"nodeid": report.nodeid, "longrepr": _longrepr_text(report)})

    @pytest.hookimpl(trylast=True)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.items = {item.nodeid: item for item in session.items}

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> bool:
        self.started = True
        self.worker.reply(self.session_msg_id, {
            "collected": list(self.items),
            "collect_errors": self.collect_errors,
        })
        self.end_msg = self.worker.serve({"item": self.handle_item}, until="end_session")
        return True

    def pytest_runtest_logreport(self, report: Any) -> None:
        self._reports.append(report)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item):
        try:
            return (yield)
        finally:
            self._bench = _benchmark_samples(item)

    # -- requests -----------------------------------------------------------

    def handle_item(self, msg: dict) -> dict[str, Any]:
        nodeid = msg["nodeid"]
        item = self.items.get(nodeid)
        if item is None:
            raise LookupError(
                f"{nodeid} was not collected in this environment "
                f"(collected: {len(self.items)} item(s); errors: "
                f"{[e['nodeid'] for e in self.collect_errors]})"
            )
        self._reports = []
        self._bench = None
        take_work()
        gc.collect()
        item.config.hook.pytest_runtest_protocol(item=item, nextitem=None)
        outcome = "passed"
        duration = None
        longrepr = ""
        for rep in self._reports:
            if rep.when == "call":
                duration = rep.duration
            if rep.failed:
                outcome, longrepr = "failed", f"[{rep.when}] {_longrepr_text(rep)}"
                break
            if rep.skipped and outcome == "passed":
                outcome, longrepr = "skipped", _longrepr_text(rep)
        return {
            "outcome": outcome,
            "duration": duration,
            "benchmark_samples": self._bench,
            "longrepr": longrepr,
            "work": take_work(),
        }


def run_session(worker: "Worker", msg: dict) -> Any:
    """Handle ``session``: collect, then serve items until ``end_session``."""
    rootdir = msg.get("rootdir")
    if rootdir:
        os.chdir(rootdir)
    server = ItemServer(worker, msg.get("id"))
    args = ["-q", "-p", "no:cacheprovider", *msg.get("args", []), *msg["nodeids"]]
    exitcode = pytest.main(args, plugins=[server])
    if not server.started:
        raise RuntimeError(
            f"pytest in the environment stopped before running tests (exit code {int(exitcode)}); "
            f"collection errors: {server.collect_errors or 'none reported (see the worker log)'}"
        )
    if server.end_msg is not None:
        worker.reply(server.end_msg.get("id"), {"exitcode": int(exitcode)})
    return NO_REPLY
