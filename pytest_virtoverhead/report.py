"""What a comparison run shows: the terminal table and the JSON file."""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from typing import Any, Iterable

from . import noise, stats, textfmt
from .claims import FAIL, INCONCLUSIVE, PASS
from .fsutil import atomic_write
from .results import SKIPPED, ItemResult
from .textfmt import env_label, fixed

JSON_VERSION = 2
#: Raw samples kept per test and environment in the JSON (evenly spaced).
RAW_SAMPLES_CAP = 1000
_VERDICT_TEXT = {PASS: "pass", FAIL: "FAIL", INCONCLUSIVE: "inconclusive", SKIPPED: "skipped"}
_VERDICT_RANK = {FAIL: 3, INCONCLUSIVE: 2, PASS: 1, SKIPPED: 0}



def host_line(metadata: dict[str, dict[str, Any]], host: dict[str, Any] | None = None) -> str | None:
    """``baremetal: the host, itself a KVM guest (evidence)`` when the host
    is a virtual machine; None on a real bare-metal host."""
    host = noise.host_virtualization() if host is None else host
    if not host.get("virtual"):
        return None
    names = [n for n, m in metadata.items() if m.get("kind") == "baremetal"] or ["baremetal"]
    return f"{', '.join(names)}: {noise.host_label(host)} ({'; '.join(host.get('evidence', []))})"


def table_lines(results: Iterable[ItemResult], metadata: dict[str, dict[str, Any]],
                confidence: float = 0.95) -> list[str]:
    """The comparison table: one row per test and environment (a rate
    column appears when some test recorded its work). ``n`` counts rounds;
    the median is that of the rounds' values."""
    results = list(results)
    show_rate = any(res.work for res in results)
    head = ["test", "env", "n", "median", "rate", "ratio", f"{confidence:.0%} CI", "verdict"]
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
                ratio, ci_text = fixed(r), f"[{fixed(ci[0])}, {fixed(ci[1])}]"
            else:
                ratio, ci_text = "-", "-"
            verdicts = [c for c in res.claims if c.claim.env == name]
            verdict = ""
            if verdicts:
                worst = max(verdicts, key=lambda c: _VERDICT_RANK[c.verdict])
                verdict = _VERDICT_TEXT[worst.verdict]
                if len(verdicts) > 1:
                    verdict += f" ({len(verdicts)} claims)"
            rate = res.rate(name)
            rows.append([test, label, str(len(samples)), textfmt.seconds(stats.median(samples)),
                         textfmt.rate(*rate) if rate else "", ratio, ci_text, verdict])
        if res.failure:
            rows.append([""] * 7 + [f"test failed in {res.failure[0]}"])
        elif res.xfailed:
            rows.append([""] * 7 + [f"xfailed ({res.xfailed[0]})"])
        elif res.skipped:
            rows.append([""] * 7 + [f"skipped ({res.skipped[0]})"])
        elif res.disturbed_rounds:
            rows.append([""] * 7 + [f"noise: {res.disturbed_rounds} disturbed round(s), {res.retries} retried"])
    columns = [i for i in range(len(head)) if show_rate or head[i] != "rate"]
    head = [head[i] for i in columns]
    rows = [[r[i] for i in columns] for r in rows]
    widths = [max([len(head[i])] + [len(r[i]) for r in rows]) for i in range(len(head))]
    right = {i for i, h in enumerate(head) if h in ("n", "median", "rate", "ratio")}

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(widths[i]) if i in right else c.ljust(widths[i])
                         for i, c in enumerate(cells)).rstrip()

    out = [line(head), line(["-" * w for w in widths])]
    out.extend(line(r) for r in rows)
    return out


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
                out.append(f"{tag:<13} {res.nodeid}: {c.claim.text} ({c.reason.splitlines()[0] if c.reason else ''})")
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
            p = f", p={c.p_value:.3g}" if c.p_value is not None else ""
            out.append(f"{tag:<13} {res.nodeid}: {c.claim.text}  {c.estimate_text()}{p}{extra}")
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
            if meta.get(key) not in (None, "", []):
                parts.append(f"{key}={meta[key]}")
        starts = list((meta.get("process_start_seconds") or {}).values())
        if starts:
            parts.append(f"worker_processes={len(starts)} (each started in {min(starts):.2f}-{max(starts):.2f} s)")
        if meta.get("accel_reason"):
            parts.append(f"({meta['accel_reason']})")
        out.append(f"{name}: " + " ".join(str(p) for p in parts))
    return out


def footprint_report(envs: dict[str, Any], metadata: dict[str, dict[str, Any]], claims: Iterable[Any] = (),
                     skipped: Iterable[tuple[Any, str]] = ()) -> dict[str, Any]:
    """The JSON's ``footprint``: ``environments`` (name -> kind, figures
    with their sources, or ``unavailable``) and ``claims`` (each footprint
    claim's verdict). ``envs`` are the started environment handles; the end
    readings must have been taken (``Environment.footprint_end``)."""
    from . import footprint

    fps: dict[str, dict[str, Any]] = {}
    for name, meta in metadata.items():
        env = envs.get(name)
        if env is not None and env.footprint.starts:
            fps[name] = env.footprint.to_json()
        else:
            fps[name] = {"kind": meta.get("kind"), "figures": {}}
            if meta.get("unavailable"):
                fps[name]["unavailable"] = meta["unavailable"].splitlines()[0]
    results = [footprint.evaluate(c, fps) for c in claims]
    results += [{"claim": c.text, "kind": "footprint", "verdict": footprint.SKIPPED, "reason": why}
                for c, why in skipped]
    return {"environments": fps, "claims": results}


def footprint_lines(data: dict[str, Any], metadata: dict[str, dict[str, Any]]) -> list[str]:
    """The terminal's footprint section: every figure with its source, then
    the footprint claims' verdicts."""
    from . import footprint

    labels = {name: env_label(name, metadata.get(name, {})) for name in data.get("environments", {})}
    out = footprint.section_lines(data.get("environments", {}), labels)
    if data.get("claims"):
        out.append("footprint claims:")
        out.extend("  " + footprint.claim_line(c) for c in data["claims"])
    return out


def _thin(xs: list[float], cap: int) -> list[float]:
    if len(xs) <= cap:
        return xs
    step = len(xs) / cap
    return [xs[int(i * step)] for i in range(cap)]


def _processes(res: ItemResult, name: str) -> list[dict[str, Any]]:
    out = []
    for slot, pid in sorted(res.processes.get(name, {}).items()):
        values = [r.values[name] for r in res.used_rounds if r.slot == slot and name in r.values]
        out.append({"process": slot, "pid": pid, "hash_seed": res.hash_seeds.get(name, {}).get(slot),
                    "rounds": len(values), "median": stats.median(values) if values else None})
    return out


def to_json(results: Iterable[ItemResult], metadata: dict[str, dict[str, Any]], *,
            seed: int, baseline: str, rounds: int, extra: dict[str, Any] | None = None,
            statistics: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``--virt-json`` document, version 2: every version-1 key, with
    ``samples`` now one value per used round (the statistical unit), plus
    per-round and per-process records, the noise record and the host's own
    virtualization."""
    results = list(results)
    host = noise.host_virtualization()
    data: dict[str, Any] = {
        "version": JSON_VERSION,
        # When the run ended (UTC): `history` orders saved runs by it.
        "written": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
        "seed": seed,
        "baseline": baseline,
        "rounds": rounds,
        "host": {**host, "label": noise.host_label(host)},
        "statistics": {"unit": "round", "cluster": "worker process", "method": "t over processes",
                       **(statistics or {})},
        "noise": {"rule": {"steal_limit": noise.STEAL_LIMIT, "steal_min_ticks": noise.STEAL_MIN_TICKS,
                           "nivcsw_per_s_limit": noise.NIVCSW_PER_S_LIMIT, "nivcsw_min": noise.NIVCSW_MIN,
                           "offcpu_rise": noise.OFFCPU_RISE},
                  "disturbed_rounds": sum(r.disturbed_rounds for r in results),
                  "retried_rounds": sum(r.retries for r in results)},
        "environments": metadata,
        "results": [],
        "claims": [],
        "tests": [],
    }
    for res in results:
        outcome = ("failed" if res.failure else "xfailed" if res.xfailed else "skipped" if res.skipped
                   else "measured")
        data["tests"].append({"test": res.nodeid, "envs": res.envs, "rounds": res.rounds, "order": res.order,
                              "stopped_by": res.stopped_by, "calls": res.calls, "retries": res.retries,
                              **({"pair_calls": {f"{e}/{r}": k for (e, r), k in res.pair_calls.items()}}
                                 if res.pair_calls else {}),
                              "disturbed": res.disturbed_rounds,
                              "outcome": outcome, "unavailable": res.unavailable,
                              **({"error": res.failure[1]} if res.failure else {}),
                              **({"xfailed": res.xfailed[1]} if res.xfailed else {}),
                              **({"xpassed": res.xpassed} if res.xpassed is not None else {}),
                              **({"skipped": res.skipped[1]} if res.skipped else {})})
        all_samples = res.samples
        for name in res.envs:
            samples = all_samples.get(name)
            entry: dict[str, Any] = {"test": res.nodeid, "env": name}
            if samples:
                raw = [x for r in res.used_rounds for x in r.raw.get(name, [])]
                entry.update({"samples": samples, "median": stats.median(samples),
                              "source": res.source.get(name), "n_rounds": len(samples),
                              "calls": res.calls.get(name, max(res.calls.values(), default=1)),
                              "stats": stats.summarize(samples),
                              "raw_samples": _thin(raw, RAW_SAMPLES_CAP),
                              "rounds": [r.to_json(name) for r in res.round_log if name in r.values],
                              "processes": _processes(res, name)})
                rate = res.rate(name)
                if rate:
                    entry["rate"] = {"value": rate[0], "unit": rate[1], "work": res.work[name],
                                     "kind": "workload's own" if res.own_rates.get(name) else "work over wall time"}
                if name in res.ratios:
                    r, ci = res.ratios[name]
                    entry["ratio"] = r if math.isfinite(r) else None
                    entry["ci"] = [v if math.isfinite(v) else None for v in ci]
            else:
                entry.update({"samples": [], "median": None})
                if name in res.unavailable:
                    entry["unavailable"] = res.unavailable[name]
            if res.failure and res.failure[0] == name:
                entry["error"] = res.failure[1]
            data["results"].append(entry)
        data["claims"].extend(c.to_json() for c in res.claims)
    if extra:
        data.update(extra)
    return data


def write_json_atomic(path: str, data: dict[str, Any]) -> None:
    """Write ``data`` to ``path`` so that readers never see half a file."""
    atomic_write(path, json.dumps(data, indent=1, allow_nan=False, default=str) + "\n")
