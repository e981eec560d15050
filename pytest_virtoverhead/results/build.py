"""The run document from what the round runner measured: an
:class:`.ItemResult` becomes a :class:`.ItemRecord`, a session's results
a :class:`.RunDocument`.

Nothing here imports pytest.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Iterable

from ..guest import noise
from ..judge import stats
from ..judge.verdict import FAIL, PASS
from . import machine as machine_mod, phases
from .document import JSON_VERSION, ClaimEntry, EnvEntry, ItemRecord, RunDocument, json_safe
from .model import ItemResult

#: Raw samples kept per test and environment in the JSON (evenly spaced).
RAW_SAMPLES_CAP = 1000


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


def _test_object(res: ItemResult) -> dict[str, Any]:
    outcome = "failed" if res.failure else "xfailed" if res.xfailed else "skipped" if res.skipped else "measured"
    return {"test": res.nodeid, "envs": res.envs, "rounds": res.rounds, "order": res.order,
            "stopped_by": res.stopped_by, "calls": res.calls, "retries": res.retries,
            **({"pair_calls": {f"{e}/{r}": k for (e, r), k in res.pair_calls.items()}} if res.pair_calls else {}),
            "disturbed": res.disturbed_rounds, "cost": res.phases.to_json(),
            "outcome": outcome, "unavailable": res.unavailable,
            **({"error": res.failure[1]} if res.failure else {}),
            **({"xfailed": res.xfailed[1]} if res.xfailed else {}),
            **({"xpassed": res.xpassed} if res.xpassed is not None else {}),
            **({"skipped": res.skipped[1]} if res.skipped else {})}


def _env_object(res: ItemResult, name: str, samples: list[float] | None) -> dict[str, Any]:
    entry: dict[str, Any] = {"test": res.nodeid, "env": name}
    if samples:
        raw = [x for r in res.used_rounds for x in r.raw.get(name, [])]
        # "median" (and "rate") agree with the ratio (ItemResult.table_median);
        # the plain median of the round values is "median_unpaired".
        entry.update({"samples": samples, "median": res.table_median(name),
                      "median_unpaired": stats.median(samples),
                      "source": res.source.get(name), "n_rounds": len(samples),
                      "calls": res.calls.get(name, max(res.calls.values(), default=1)),
                      "stats": stats.summarize(samples),
                      "raw_samples": _thin(raw, RAW_SAMPLES_CAP),
                      "rounds": [r.to_json(name) for r in res.round_log if name in r.values],
                      "processes": _processes(res, name)})
        rate, own = res.table_rate(name), res.rate(name)
        if rate and own:
            kind = "workload's own" if res.own_rates.get(name) else "work over wall time"
            entry["rate"] = {"value": rate[0], "unit": rate[1], "work": res.work[name], "kind": kind}
            if rate != own:
                entry["rate"]["paired"] = "the baseline's rate over the ratio"
                entry["rate"]["unpaired"] = own[0]
        resources = res.resources(name)
        if resources is not None:
            entry["resources"] = resources
            entry["resources_per"] = ("test call (the whole pytest-benchmark run, calibration included)"
                                      if res.source.get(name) == "benchmark" else "call")
            vs = res.resources_vs_baseline(name)
            if vs is not None:
                entry["resources_vs_baseline"] = vs
            why_text = res.why(name)
            if why_text:
                entry["why"] = why_text
        if name in res.ratios:
            r, ci = res.ratios[name]
            entry["ratio"], entry["ci"] = json_safe(r), json_safe(list(ci))
    else:
        entry.update({"samples": [], "median": None})
        if name in res.unavailable:
            entry["unavailable"] = res.unavailable[name]
    if res.failure and res.failure[0] == name:
        entry["error"] = res.failure[1]
    return entry


def record_of(res: ItemResult) -> ItemRecord:
    """The test's record: its ``tests`` object, an entry per environment
    (samples, per-round and per-process records, rate, ratio) and its
    claims' verdicts."""
    samples = res.samples
    return ItemRecord(res.nodeid, _test_object(res),
                      envs=[EnvEntry(_env_object(res, name, samples.get(name))) for name in res.envs],
                      claims=[ClaimEntry(_claim_json(res, c)) for c in res.claims])


def _claim_json(res: ItemResult, claim: Any) -> dict[str, Any]:
    """A claim's JSON, with the "why" line of its environment under a
    decided claim against the run's baseline."""
    out = claim.to_json()
    if claim.verdict in (PASS, FAIL) and claim.claim.baseline == res.baseline and claim.claim.env != res.baseline:
        text = res.why(claim.claim.env)
        if text:
            out["why"] = text
    return out


def run_document(results: Iterable[ItemResult], metadata: dict[str, dict[str, Any]], *, seed: int,
                 baseline: str, rounds: int, statistics: dict[str, Any] | None = None,
                 verdict_method: dict[str, Any] | None = None, machine_name: str | None = None,
                 rootdir: str | None = None, **extra: Any) -> RunDocument:
    """The ``--virt-json`` document of a session's results, version
    :data:`.JSON_VERSION`: the host's own virtualization, the machine
    (:func:`.machine.describe`: ``machine_name`` is the ini's
    ``virt_machine``, ``rootdir`` where the commit is read), the statistics'
    settings, the noise rule and counts, the environments' metadata, a
    record per test; then ``extra`` (``session``, ``interrupted``,
    ``aborted``, ``exitstatus``, ``footprint``) and ``verdict_method``."""
    results = list(results)
    host = noise.host_virtualization()
    head: dict[str, Any] = {
        "version": JSON_VERSION,
        # When the run ended (UTC): `history` orders saved runs by it.
        "written": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
        "seed": seed,
        "baseline": baseline,
        "rounds": rounds,
        "host": {**host, "label": noise.host_label(host)},
        "machine": machine_mod.describe(metadata, host, ini_name=machine_name, rootdir=rootdir),
        "statistics": {"unit": "round", "cluster": "worker process", "method": "t over processes",
                       **(statistics or {})},
        "noise": {"rule": {"steal_limit": noise.STEAL_LIMIT, "steal_min_ticks": noise.STEAL_MIN_TICKS,
                           "nivcsw_per_s_limit": noise.NIVCSW_PER_S_LIMIT, "nivcsw_min": noise.NIVCSW_MIN,
                           "offcpu_rise": noise.OFFCPU_RISE},
                  "disturbed_rounds": sum(r.disturbed_rounds for r in results),
                  "retried_rounds": sum(r.retries for r in results)},
        "environments": metadata,
        # Where the compared tests' time went, summed over them (per test: tests[].cost).
        "cost": phases.total(res.phases.to_json() for res in results),
        "results": None, "claims": None, "tests": None,
        **extra,
    }
    if verdict_method is not None:
        head["verdict_method"] = verdict_method
    return RunDocument(head, [record_of(res) for res in results])


def empty_document(*, seed: int, baseline: str, rounds: int, statistics: dict[str, Any],
                   verdict_method: dict[str, Any], aborted: bool, exitstatus: int,
                   machine_name: str | None = None, rootdir: str | None = None) -> RunDocument:
    """The document of a run that measured nothing (for the job summary,
    which says so): the head's settings and machine, no environments, no tests."""
    machine = machine_mod.describe({}, noise.host_virtualization(), ini_name=machine_name, rootdir=rootdir)
    return RunDocument({"version": JSON_VERSION, "seed": seed, "baseline": baseline, "rounds": rounds,
                        "machine": machine,
                        "statistics": statistics, "environments": {}, "results": None, "claims": None,
                        "tests": None, "aborted": aborted, "exitstatus": exitstatus,
                        "verdict_method": verdict_method})
