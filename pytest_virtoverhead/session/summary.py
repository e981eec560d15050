"""What a compared session prints around its tests: the header line
(``pytest_report_header``) and the comparison at the end
(``pytest_terminal_summary``), from the session (:mod:`.session`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..judge.textfmt import method_line
from ..render.report import claim_lines, environment_lines, host_line, table_lines
from .config import Settings
from .finish import explained, verdict_method

if TYPE_CHECKING:
    from .virtsession import VirtSession


def header_line(s: Settings, xdist_cpus: str | None) -> str:
    """The run's settings and how to repeat it; ``xdist_cpus``: the CPUs an
    xdist controller hands its workers."""
    cpus = ",".join(map(str, s.cpus)) if s.cpus else "all"
    if xdist_cpus is not None:
        cpus = f"one per xdist worker ({xdist_cpus})"
    return (f"virtoverhead: envs={','.join(f'{sp.name}={sp.kind}' if sp.name != sp.kind else sp.name for sp in s.specs)} "
            f"baseline={s.baseline} rounds={s.rounds} processes={s.processes or 'auto'} calls={s.calls or 'auto'} "
            f"warmup={s.warmup} confidence={s.confidence:g}"
            f"{' correction=' + s.correction if s.correction != 'none' else ''} seed={s.seed} cpus={cpus} "
            f"memory={s.memory_mb}MiB (repeat with --virt-seed={s.seed})")


def write_summary(session: VirtSession, tr: Any) -> None:
    """The comparison: the table, the claims, the ablations, the adaptive
    rounds, the environments, the footprint and the outputs' notes."""
    s = session.settings
    gate = "" if s.gate else ", findings only: claims do not fail tests"
    tr.write_sep("=", f"virtoverhead: comparison (baseline {s.baseline}, seed {s.seed}{gate})")
    if not session.results:
        tr.write_line("no test marked @pytest.mark.virt was run" + (
            f" and none matched --virt-select={s.select!r}" if s.select else ""))
        for line in session.output_notes:
            tr.write_line(line)
        return
    metadata = session.metadata()
    host = host_line(metadata)
    if host:
        tr.write_line(host)
    for line in table_lines(session.results, metadata, s.confidence):
        tr.write_line(line)
    method = verdict_method(session)
    lines = claim_lines(session.results, s.strict)
    if lines:
        tr.write_line("")
        tr.write_line("claims:")
        for line in lines:
            tr.write_line("  " + line)
        tr.write_line(method_line(method))
    explain = explained(session).get("explain")
    if explain is not None:
        from .explain import explain_lines

        tr.write_line("")
        tr.write_line("explain (--virt-explain: ablations remove one mechanism each):")
        for line in explain_lines(explain) or ["no ablation measured (no container environment in the run)"]:
            tr.write_line("  " + line)
    if s.time_budget:
        tr.write_line("")
        tr.write_line(f"adaptive sampling (--virt-time-budget={s.time_budget:g} s per test):")
        for res in session.results:
            tr.write_line(f"  {res.nodeid}: {res.rounds} rounds, stopped: {res.stopped_by or 'not measured'}")
    tr.write_line("")
    tr.write_line("environments:")
    for line in environment_lines(metadata):
        tr.write_line("  " + line)
    if session.footprint:
        from ..render.report import footprint_lines

        tr.write_line("")
        tr.write_line("footprint (what each environment holds on the host; [source]):")
        for line in footprint_lines(session.footprint, metadata):
            tr.write_line("  " + line)
    if session.pool.reaped:
        tr.write_line(f"  removed leftovers of earlier sessions: {', '.join(session.pool.reaped)}")
    for line in session.output_notes:
        tr.write_line(line)
    for line in session.output_failures:
        tr.write_line(line, red=True, bold=True)
