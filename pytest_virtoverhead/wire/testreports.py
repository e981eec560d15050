"""pytest's test reports across the worker protocol, in pytest-xdist's way.

Inside an environment the worker turns the reports (setup, call, teardown)
of a test's run into JSON with pytest's own ``pytest_report_to_serializable``
hook (:func:`dump`); the host turns them back with
``pytest_report_from_serializable`` and settles what the plugin decides on
them (:func:`host_reports`), so captured output sections, the structured
traceback, xfail, user properties and the report's other fields reach the
host's terminal, junitxml and every other reporting plugin as pytest made
them; the run's warnings reach the host's warnings summary (:func:`log`).
:func:`worker_args` hands the environments the options that shape a report.

Imported by the worker: nothing from the host side, no numpy.
"""

from __future__ import annotations

import importlib
import json
import os
import warnings
from typing import Any, Protocol

import pytest

from .protocol import bound_strings


class Outcome(Protocol):
    """How a compared test ends, as the host's reports need it
    (:class:`.verdicts.Outcome` on the host side)."""

    @property
    def outcome(self) -> str: ...
    @property
    def text(self) -> str | None: ...
    @property
    def sections(self) -> list[tuple[str, str]]: ...
    @property
    def wasxfail(self) -> str | None: ...
    @property
    def env(self) -> str | None: ...

#: The title of the longrepr section naming the environment a test failed
#: in, for a longrepr without a chain to put the note before (--tb=native).
SECTION = "virtoverhead"


def worker_args(config: pytest.Config) -> list[str]:
    """The host's options that shape a failure's report, for the pytest
    session in each environment: its reports are drawn there (``--tb``,
    ``--showlocals``, ``--full-trace``, ``-v``'s assertion detail)."""
    opt = config.option
    args = [f"--tb={opt.tbstyle}"] if getattr(opt, "tbstyle", None) else []
    args += ["--showlocals"] * bool(getattr(opt, "showlocals", False))
    args += ["--full-trace"] * bool(getattr(opt, "fulltrace", False))
    verbose = getattr(opt, "verbose", 0)
    return args + ([f"--verbosity={verbose}"] if verbose > 0 else [])


#: Captured output (and any other text) of a test's reports crosses to the
#: host kept to its first and last half MiB per section: a test that prints
#: 150 MB would otherwise make a message over the protocol's frame limit
#: (64 MiB), and even below it crawl over a VM's serial line.
TEXT_LIMIT = 1024 * 1024
#: The reports of one run in all: past this, every text is cut to 64 KiB.
REPORTS_LIMIT = 8 * 1024 * 1024


def bound_text(text: str) -> str:
    """A report's text (a failure's message) within :data:`TEXT_LIMIT`."""
    return bound_strings(text, TEXT_LIMIT, "output")


def dump(config: pytest.Config, reports: list[pytest.TestReport], recorded: list[Any]) -> dict[str, Any]:
    """The reports and the warnings (``warnings.WarningMessage``) of a run
    as JSON-ready dicts (the protocol's frames carry JSON only): a value
    JSON cannot carry, such as an object a test put in its
    ``user_properties``, crosses as its ``repr``. Texts (captured output
    sections, a failure's lines) are kept within :data:`TEXT_LIMIT`, the
    whole within about :data:`REPORTS_LIMIT`, the cut said in the text."""
    data = {
        "reports": [config.hook.pytest_report_to_serializable(config=config, report=rep) for rep in reports],
        "warnings": [{"message": str(w.message), "category": f"{w.category.__module__}:{w.category.__qualname__}",
                      "filename": str(w.filename), "lineno": w.lineno} for w in recorded],
    }
    text = json.dumps(data, default=repr)
    if len(text) <= TEXT_LIMIT:
        return json.loads(text)
    data = bound_strings(json.loads(text), TEXT_LIMIT, "output")
    if len(json.dumps(data)) > REPORTS_LIMIT:
        data = bound_strings(data, 64 * 1024, "output")
    return data


def _warning(data: dict[str, Any]) -> warnings.WarningMessage:
    """A warning back from its dict: its category where the host can import
    it (else UserWarning), its message as text."""
    module, _, name = data["category"].partition(":")
    try:
        category = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        category = UserWarning
    return warnings.WarningMessage(data["message"], category, data["filename"], data["lineno"])


def _load(config: pytest.Config, item: pytest.Item, data: dict[str, Any]) -> pytest.TestReport:
    """One report back from its dict, under the host item's node id and
    location, with the tuples JSON turned into lists made tuples again
    (a skip's longrepr, sections, user properties)."""
    rep = config.hook.pytest_report_from_serializable(config=config, data=data)
    rep.nodeid, rep.location = item.nodeid, item.location
    if isinstance(rep.longrepr, list):
        rep.longrepr = tuple(rep.longrepr)
    rep.sections = [tuple(s) for s in rep.sections]
    rep.user_properties = [tuple(p) for p in rep.user_properties]
    return rep


def _name_environment(item: pytest.Item, rep: pytest.TestReport, env: str) -> None:
    """Say on the report that decided the outcome which environment it comes
    from: a line before its traceback (else a section after it), a line
    before a text, the reason of a skip (at a path of the host when the
    environment's is not one)."""
    longrepr: Any = rep.longrepr
    what = "failed" if rep.failed else "xfailed" if hasattr(rep, "wasxfail") else "was skipped"
    note = f"the test {what} in environment {env!r}"
    if getattr(longrepr, "chain", None):
        # A link before the exception's own: an empty traceback whose
        # description, the note, pytest prints first (the crash line that
        # --tb=line and the summary show is the last link's, unchanged).
        tb = longrepr.chain[0][0]
        longrepr.chain.insert(0, (type(tb)(reprentries=[], extraline=None, style=tb.style), None, note))
    elif hasattr(longrepr, "addsection"):
        longrepr.addsection(SECTION, note)
    elif isinstance(longrepr, tuple) and len(longrepr) == 3 and not hasattr(rep, "wasxfail"):
        path, line, reason = longrepr
        if not os.path.exists(path):
            path, line = str(item.path), (item.location[1] or 0) + 1
        head = "Skipped: " if reason.startswith("Skipped: ") else ""  # pytest's -rs drops it
        rep.longrepr = (path, line, f"{head}skipped in environment {env!r}: {reason[len(head):]}")
    elif isinstance(longrepr, str):
        rep.longrepr = f"the test failed in environment {env!r}:\n{longrepr}"


def _blank(item: pytest.Item, start: float, stop: float) -> list[pytest.TestReport]:
    """Passed setup, call and teardown reports of the host's item: when no
    environment sent its own (it could not run the test)."""
    keywords: dict[str, Any] = {k: 1 for k in item.keywords}
    return [pytest.TestReport(nodeid=item.nodeid, location=item.location, keywords=keywords, outcome="passed",
                              longrepr=None, when=when, duration=0.0, start=start, stop=stop)
            for when in ("setup", "call", "teardown")]


def _longrepr(item: pytest.Item, end: Outcome) -> Any:
    """The longrepr of an outcome the plugin decided."""
    if end.wasxfail is not None:
        return None  # pytest shows XFAIL/XPASS with the marker's reason
    if end.outcome == "skipped":
        return (str(item.location[0]), (item.location[1] or 0) + 1, end.text or "")
    return end.text


def log(item: pytest.Item, end: Outcome, worker: tuple[str, dict[str, Any]] | None, start: float,
        stop: float) -> None:
    """Log a compared test's reports (:func:`host_reports`) and the warnings
    its run in an environment raised, as pytest would have here."""
    for rep in host_reports(item, end, worker, start, stop):
        item.ihook.pytest_runtest_logreport(report=rep)
    for data in (worker[1].get("warnings") or []) if worker else []:
        item.ihook.pytest_warning_recorded.call_historic(kwargs=dict(
            warning_message=_warning(data), when="runtest", nodeid=item.nodeid, location=None))


def host_reports(item: pytest.Item, end: Outcome, worker: tuple[str, dict[str, Any]] | None,
                 start: float, stop: float) -> list[pytest.TestReport]:
    """The reports the host logs for a compared test: ``worker`` (env,
    :func:`dump` of a run in an environment), else blank ones.

    When the outcome is the environment's own (the test failed, skipped or
    xfailed there: ``end.env``), its reports are logged as they are, the
    deciding one naming the environment. Otherwise (passed there: a claim,
    an environment's fault or the settings decide) the call report takes
    the plugin's outcome. The call report (else the deciding one) also
    takes the plugin's sections and the comparison's time on the host;
    every report the host item's user properties (the ratios)."""
    env, data = worker or ("", {})
    reports = [_load(item.config, item, d) for d in data.get("reports") or []] or _blank(item, start, stop)
    decider = next((r for r in reports if not r.passed), None) if end.env and end.env == env else None
    call = next((r for r in reports if r.when == "call"), None)
    if decider is not None:
        _name_environment(item, decider, env)
    else:
        decider = call or reports[-1]
        decider.outcome, decider.longrepr = end.outcome, _longrepr(item, end)  # type: ignore[assignment]
        if end.wasxfail is not None:
            decider.wasxfail = end.wasxfail  # type: ignore[attr-defined]
    timed = call or decider
    timed.duration, timed.start, timed.stop = stop - start, start, stop
    decider.sections.extend(end.sections)
    for rep in reports:
        rep.user_properties.extend(p for p in item.user_properties if p not in rep.user_properties)
    return reports
