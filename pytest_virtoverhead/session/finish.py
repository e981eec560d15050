"""The end of a compared run: the verdict method (--virt-correction applied
once), the environments' last footprint readings and footprint verdicts,
and the result files (--virt-json, --virt-report, --virt-markdown, the
GitHub job summary), each written on its own.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from ..render import htmlreport
from ..results import empty_document, run_document, write_json_atomic
from .config import Settings
from .judging import correct


def verdict_method(state: Any) -> dict[str, Any]:
    """--virt-correction applied to the run's claims (once: each result's
    verdicts replaced by :func:`.judging.correct`'s), and the method the
    reports name (the JSON's ``verdict_method``)."""
    if state.method is None:
        s = state.settings
        # An xdist worker under holm: the other workers' claims join the family.
        peers = state.peers() if state.peers is not None else ()
        state.method, corrected = correct(state.results, s.confidence, s.correction, peers)
        for res, claims in zip(state.results, corrected):
            res.claims = list(claims)
    return state.method


#: Exit statuses of a run that did not finish: its --virt-json says
#: "aborted": true, and ``pytest-virtoverhead compare`` refuses it.
ABORTED = (pytest.ExitCode.INTERRUPTED, pytest.ExitCode.INTERNAL_ERROR, pytest.ExitCode.USAGE_ERROR)


def statistics(s: Settings) -> dict[str, Any]:
    return {"confidence": s.confidence, "processes": s.processes or "auto", "calls": s.calls or "auto",
            "warmup": s.warmup, "hash_seed": s.hash_seed}


def machine_inputs(config: pytest.Config) -> dict[str, Any]:
    """What the run document's ``machine`` block needs from pytest: the
    ini key ``virt_machine`` and the rootdir (where the commit is read)."""
    return {"machine_name": config.getini("virt_machine") or None, "rootdir": str(config.rootpath)}


def write_outputs(session: pytest.Session, state: Any, exitstatus: int) -> None:
    """Write --virt-json, --virt-report, --virt-markdown and the GitHub job
    summary ($GITHUB_STEP_SUMMARY, appended), each on its own: one that
    fails is named in the summary (and the run exits non-zero) while the
    others are still written. A run that measured nothing writes nothing,
    so an earlier file at the same path is kept rather than replaced by an
    empty run."""
    from ..render import markdown

    s = state.settings
    config = session.config
    writers = [(option, path, what, write) for option, path, what, write in (
        ("--virt-json", s.json_path, "results", write_json_atomic),
        ("--virt-report", config.option.virt_report, "HTML report", htmlreport.write_report),
        ("--virt-markdown", s.markdown_path, "Markdown summary", markdown.write_markdown),
        ("GITHUB_STEP_SUMMARY", os.environ.get("GITHUB_STEP_SUMMARY") or None, "GitHub job summary",
         markdown.append_summary)) if path]
    if not writers or exitstatus == pytest.ExitCode.USAGE_ERROR:
        return
    aborted = exitstatus in ABORTED
    if not state.results:
        # The job summary is appended to, never replaced: it says that
        # nothing was compared (a --virt-select that matched nothing shows).
        summary = [w for w in writers if w[0] == "GITHUB_STEP_SUMMARY"]
        writers = [w for w in writers if w[0] != "GITHUB_STEP_SUMMARY"]
        if writers:
            kept = [p for _, p, _, _ in writers if os.path.exists(p)]
            state.output_notes.append(
                f"nothing was measured (exit status {int(exitstatus)}): {', '.join(p for _, p, _, _ in writers)} "
                "not written" + (f"; the earlier {', '.join(kept)} kept" if kept else ""))
        data = empty_document(seed=s.seed, baseline=s.baseline, rounds=s.rounds, statistics=statistics(s),
                              aborted=aborted, exitstatus=int(exitstatus),
                              verdict_method=verdict_method(state), **machine_inputs(config)).to_json()
        _write_each(session, state, summary, data, aborted)
        return
    try:
        extra = state.controller.document_extra() if state.controller is not None else {}
        data = run_document(state.results, state.metadata(), seed=s.seed, baseline=s.baseline,
                            rounds=s.rounds, statistics=statistics(s), session=state.ctx.session_id,
                            interrupted=exitstatus == pytest.ExitCode.INTERRUPTED, aborted=aborted,
                            exitstatus=int(exitstatus), footprint=state.footprint,
                            verdict_method=verdict_method(state), **machine_inputs(config), **extra,
                            **explained(state)).to_json()
        if state.controller is not None:
            data = state.controller.place(data)  # workers on other hosts: each test on its machine
    except Exception as exc:  # noqa: BLE001 - the table is still shown
        state.output_failures.append(f"virtoverhead: could not assemble the results for "
                                     f"{', '.join(p for _, p, _, _ in writers)}: {type(exc).__name__}: {exc}")
        writers = []
    _write_each(session, state, writers, data, aborted)


def explained(state: Any) -> dict[str, Any]:
    """``{"explain": ...}`` under --virt-explain (computed once), else {}."""
    if not state.settings.explain:
        return {}
    if getattr(state, "explain", None) is None:
        from .explain import explain_all

        state.explain = explain_all(state.results, state.settings.ablations, state.pool.metadata(),
                                    state.settings.confidence)
    return {"explain": state.explain}


def _write_each(session: pytest.Session, state: Any, writers: list[tuple[str, str, str, Any]],
                data: dict[str, Any], aborted: bool) -> None:
    """Each writer on its own; a failure is named by option (or variable)
    and path, and makes the run exit non-zero."""
    for option, path, what, write in writers:
        append = option == "GITHUB_STEP_SUMMARY"
        try:
            write(path, data)
        except Exception as exc:  # noqa: BLE001 - say which output failed, write the others
            reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
            state.output_failures.append(
                f"virtoverhead: {option}: could not {'append to' if append else 'write'} {path}: {reason}")
            continue
        note = f"{what} {'appended to' if append else 'written to'} {path}"
        if aborted:
            note += (" (the run did not finish: marked \"aborted\", which compare refuses)"
                     if option in ("--virt-json", "--virt-report") else " (the run did not finish)")
        state.output_notes.append(note)
    if state.output_failures and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def finish_footprint(session: pytest.Session, state: Any) -> None:
    """The environments' last footprint readings, before reports are
    written and environments stopped; footprint claims judged."""
    from .. import footprint
    from ..render.report import footprint_report

    started = state.pool.started()
    for env in started.values():
        try:
            env.footprint_end()
        except Exception:  # noqa: BLE001 - a footprint never fails the run
            pass
    claims, skipped = state.footprint_claims
    try:
        state.footprint = footprint_report(started, state.pool.metadata(), claims, skipped,
                                           baseline=state.settings.baseline)
    except Exception as exc:  # noqa: BLE001 - the results are still written
        state.footprint = {"environments": {}, "claims": [], "error": f"{type(exc).__name__}: {exc}"}
        state.output_failures.append(f"virtoverhead: the footprint could not be assembled: {type(exc).__name__}: {exc}")
        return
    s = state.settings
    for res in state.footprint["claims"]:
        if s.gate and (res["verdict"] == footprint.FAIL or (s.strict and res["verdict"] == footprint.INCONCLUSIVE)):
            state.output_failures.append(f"virtoverhead: footprint claim {footprint.claim_line(res)}")
            if session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
