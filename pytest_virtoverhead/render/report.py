"""What a comparison run shows in the terminal: the table, the claims,
the environments and the footprint (the JSON file: :mod:`.results`)."""

from __future__ import annotations

import math
from typing import Any, Iterable

from ..guest import noise
from ..judge import textfmt
from ..judge.textfmt import env_label, fixed, host_envs, interval, level_text, text_table, worst_verdict
from ..judge.verdict import FAIL, INCONCLUSIVE, PASS, SKIPPED
from ..results import ItemResult

_VERDICT_TEXT = {PASS: "pass", FAIL: "FAIL", INCONCLUSIVE: "inconclusive", SKIPPED: "skipped"}

def host_line(metadata: dict[str, dict[str, Any]], host: dict[str, Any] | None = None) -> str | None:
    """``baremetal: the host, itself a KVM guest (evidence)`` when the host
    is a virtual machine; None on a real bare-metal host."""
    host = noise.host_virtualization() if host is None else host
    if not host.get("virtual"):
        return None
    return f"{', '.join(host_envs(metadata))}: {noise.host_label(host)} ({'; '.join(host.get('evidence', []))})"


def table_lines(results: Iterable[ItemResult], metadata: dict[str, dict[str, Any]],
                confidence: float = 0.95) -> list[str]:
    """The comparison table: one row per test and environment (a rate
    column appears when some test recorded its work). ``n`` counts rounds;
    the median is that of the rounds' values."""
    results = list(results)
    show_rate = any(res.work for res in results)
    head = ["test", "env", "n", "median", "rate", "ratio", f"{level_text(confidence)} CI", "verdict"]
    rows: list[list[str]] = []
    for res in results:
        first = True
        for name in res.envs:
            meta = metadata.get(name, {})
            test = res.nodeid if first else ""
            first = False
            label = env_label(name, meta)
            if name in res.unavailable:
                rows.append([test, label, "-", "-", "", "-", "-", "unavailable"])
                continue
            samples = res.samples.get(name)
            if not samples:
                status = "not run" if (res.failure or res.skipped) else "-"
                rows.append([test, label, "-", "-", "", "-", "-", status])
                continue
            if name == res.baseline:
                ratio, ci_text = "1.000", "baseline"
            elif name in res.ratios:
                r, ci = res.ratios[name]
                ratio, ci_text = fixed(r), interval(ci)
            else:
                ratio, ci_text = "-", "-"
            verdicts = [c for c in res.claims if c.claim.env == name]
            verdict = ""
            if verdicts:
                verdict = _VERDICT_TEXT[worst_verdict(c.verdict for c in verdicts)]
                if len(verdicts) > 1:
                    verdict += f" ({len(verdicts)} claims)"
            rate = res.table_rate(name)  # the median and rate agree with the ratio (results.md)
            rows.append([test, label, str(len(samples)), textfmt.seconds(res.table_median(name) or math.nan),
                         textfmt.rate(*rate) if rate else "", ratio, ci_text, verdict])
        note = _outcome_note(res)
        if note:
            rows.append([""] * 7 + [note])
    columns = [i for i in range(len(head)) if show_rate or head[i] != "rate"]
    head = [head[i] for i in columns]
    rows = [[r[i] for i in columns] for r in rows]
    return text_table(head, rows, [i for i, h in enumerate(head) if h in ("n", "median", "rate", "ratio")])


def _outcome_note(res: ItemResult) -> str:
    """The table's line under a test that did not simply measure."""
    if res.failure:
        return f"test failed in {res.failure[0]}"
    if res.xfailed:
        return f"xfailed ({res.xfailed[0]})"
    if res.skipped:
        return f"skipped ({res.skipped[0]})"
    if res.disturbed_rounds:
        return f"noise: {res.disturbed_rounds} disturbed round(s), {res.retries} retried"
    return ""


def claim_lines(results: Iterable[ItemResult], strict: bool) -> list[str]:
    out = []
    for res in results:
        for c in res.claims:
            tag = _VERDICT_TEXT[c.verdict]
            if c.verdict == INCONCLUSIVE and strict:
                tag += " (strict: fails)" if not c.waived else " (strict)"
            if c.waived and c.verdict in (FAIL, INCONCLUSIVE):
                tag += " (waived)"
            if c.verdict == SKIPPED:
                out.append(f"{tag:<13} {textfmt.one_line(res.nodeid)}: {c.claim.text} ({c.reason.splitlines()[0] if c.reason else ''})")
                continue
            extra = ""
            if c.verdict == INCONCLUSIVE:
                extra += f"\n{'':<13} {c.what_would_decide()}"
            if c.accel == "tcg":
                extra = f"  [{c.claim.env} ran under TCG: software emulation, not hardware virtualization]"
            if c.waived:
                needed = c.verdict == FAIL or (c.verdict == INCONCLUSIVE and strict)
                extra += f"\n{'':<13} {c.waiver.text}" + ("" if needed else " (not needed: the claim does not fail)")
            elif c.waiver_expired:
                extra += f"\n{'':<13} WAIVER EXPIRED: {c.waiver.text} ({c.waiver.source})"
            if c.verdict in (PASS, FAIL) and c.claim.baseline == res.baseline and c.claim.env != res.baseline:
                why = res.why(c.claim.env)
                extra += f"\n{'':<13} {why}" if why else ""
            p = f", p={c.p_value:.3g}" if textfmt.finite(c.p_value) else ""
            out.append(f"{tag:<13} {textfmt.one_line(res.nodeid)}: {c.claim.text}  {c.estimate_text()}{p}{extra}")
    return out


def environment_lines(metadata: dict[str, dict[str, Any]]) -> list[str]:
    out = []
    for name, meta in metadata.items():
        if "unavailable" in meta:
            out.append(f"{name} ({meta.get('kind')}): unavailable: {meta['unavailable'].splitlines()[0]}")
            continue
        parts = [meta.get("kind", "?")]
        # A guest's own cpuset numbers its vCPUs; the host CPUs it is pinned to say more.
        cpu_key = "cpus_pinned" if meta.get("kind") == "vm" else "cpuset"
        for key in ("accel", "runtime", "image", "kernel", cpu_key, "memory_limit_mb", "vcpus", "memory_mb",
                    "clocksource", "start_seconds"):
            if key == cpu_key and meta.get("xdist_cpus"):  # pytest-xdist: each worker's environment on its CPU
                parts.append(f"{key}=" + ",".join(f"{w}:{c}" for w, c in meta["xdist_cpus"].items()))
            elif meta.get(key) not in (None, "", []):
                parts.append(f"{key}={meta[key]}")
        starts = list((meta.get("process_start_seconds") or {}).values())
        if starts:
            parts.append(f"worker_processes={len(starts)} (each started in {min(starts):.2f}-{max(starts):.2f} s)")
        if meta.get("accel_reason"):
            parts.append(f"({meta['accel_reason']})")
        out.append(f"{name}: " + " ".join(str(p) for p in parts))
    return out


def footprint_report(envs: dict[str, Any], metadata: dict[str, dict[str, Any]], claims: Iterable[Any] = (),
                     skipped: Iterable[tuple[Any, str]] = (), baseline: str | None = None) -> dict[str, Any]:
    """The JSON's ``footprint``: ``environments`` (name -> kind, figures
    with their sources, or ``unavailable``) and ``claims`` (each footprint
    claim's verdict). ``envs`` are the started environment handles; the end
    readings must have been taken (``Environment.footprint_end``)."""
    from .. import footprint

    fps: dict[str, dict[str, Any]] = {}
    for name, meta in metadata.items():
        env = envs.get(name)
        if env is not None and env.footprint.starts:
            fps[name] = env.footprint.to_json()
        else:
            fps[name] = {"kind": meta.get("kind"), "figures": {}}
            if meta.get("unavailable"):
                fps[name]["unavailable"] = meta["unavailable"].splitlines()[0]
    if baseline is not None:  # what each environment adds over the baseline
        footprint.add_overheads(fps, baseline)
    results = [footprint.evaluate(c, fps) for c in claims]
    results += [{"claim": c.text, "kind": "footprint", "verdict": footprint.SKIPPED, "reason": why}
                for c, why in skipped]
    return {"environments": fps, "claims": results}


def footprint_lines(data: dict[str, Any], metadata: dict[str, dict[str, Any]]) -> list[str]:
    """The terminal's footprint section: every figure with its source, then
    the footprint claims' verdicts."""
    from .. import footprint

    labels = {name: env_label(name, metadata.get(name, {})) for name in data.get("environments", {})}
    out = footprint.section_lines(data.get("environments", {}), labels)
    if data.get("claims"):
        out.append("footprint claims:")
        out.extend("  " + footprint.claim_line(c) for c in data["claims"])
    return out
