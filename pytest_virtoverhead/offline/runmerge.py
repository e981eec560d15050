"""Joining saved runs (CI shards) into one run document:
``pytest-virtoverhead merge RUN.json... -o OUT.json``.

The merged document is an ordinary run document (version
:data:`.results.JSON_VERSION`) that ``compare``, ``history`` and the
renderers read. Rules:

- **Never pool across hosts.** Every test record keeps the rounds of the
  one session that measured it; nothing is recomputed. A test measured on
  two machines (by the ``machine`` block's name) stays two records, each
  test id labelled ``NODEID @ MACHINE``; a test measured on one machine
  keeps its plain id, so merged runs of later CI builds still line up in
  ``compare`` and ``history`` when the shards land on other runners.
- **One measurement per test and host.** The same test in two runs of one
  machine is refused: the two sessions cannot be pooled (a round is paired
  within its session) and keeping one silently would hide shards that
  overlap, or pick a verdict by file order.
- **One set of claims per test.** The same test with different claims in
  two runs is refused: the merged verdict would depend on which shard ran
  it.
- Runs of different document versions, baselines, confidence levels or
  verdict corrections are refused, and so are unreadable, unknown-version
  and aborted runs. Every refusal names both sides.

Each entry (``tests``, ``results``, ``claims``) gets ``machine``; the head
gets ``machines`` (per machine: its ``machine`` block, ``host`` and the
environments' metadata) and ``merged`` (the runs joined). Merged
documents can be merged again. Pure functions but :func:`load_inputs`.
"""

from __future__ import annotations

import os
from typing import Any, Iterable

from ..results import JSON_VERSION, DocumentError, RunDocument, phases
from . import runcompare

#: The name of a machine a version-2 run (no machine block) ran on.
UNNAMED = "(unnamed)"
#: Between a node id and its machine's name in a relabelled test id.
LABEL_SEP = " @ "


class MergeError(ValueError):
    """Runs that cannot be merged; the message names both sides."""


def load_inputs(paths: Iterable[str]) -> list[tuple[str, dict[str, Any]]]:
    """(path, document) of each file, checked as ``compare`` checks a run
    (readable, a known version, complete: not aborted)."""
    out: list[tuple[str, dict[str, Any]]] = []
    for path in paths:
        twice = next((p for p, _ in out if same_file(p, path)), None)
        if twice is not None:
            raise MergeError(f"{path} is given twice (also as {twice}): merge each run once")
        try:
            data = runcompare.load_run(path)
        except runcompare.RunFileError as exc:
            raise MergeError(str(exc)) from None
        out.append((path, data))
    return out


def same_file(a: str, b: str) -> bool:
    """Whether the two paths name one file (or would)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def check_output(output: str, inputs: Iterable[str], option: str = "-o/--output") -> None:
    """MergeError when ``output`` is one of the inputs."""
    for path in inputs:
        if same_file(output, path):
            raise MergeError(f"{option} {output} is also an input ({path}): the merged run would replace "
                             "one it is made from; write it to another file")


# --------------------------------------------------------------------------
# the runs' heads


def _machine_name(data: dict[str, Any]) -> str:
    block = data.get("machine")
    name = block.get("name") if isinstance(block, dict) else None
    return name if isinstance(name, str) and name else UNNAMED


def _machines_of(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{machine name: {"machine", "host", "environments"}} of a run (a merged run: its ``machines``)."""
    merged = data.get("machines")
    # A merged run, or an xdist run with workers on several hosts (:mod:`.xdisthosts`).
    if isinstance(merged, dict):
        return {name: dict(m) for name, m in merged.items() if isinstance(m, dict)}
    return {_machine_name(data): {"machine": data.get("machine"), "host": data.get("host"),
                                  "environments": data.get("environments") or {}}}


def _runs_of(path: str, data: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``merged.runs`` entries a run contributes (a merged run: its own)."""
    merged = data.get("merged")
    if isinstance(merged, dict) and isinstance(merged.get("runs"), list):
        return [dict(r, file=f"{path}: {r.get('file')}") for r in merged["runs"] if isinstance(r, dict)]
    block = data.get("machine") if isinstance(data.get("machine"), dict) else {}
    machines = data.get("machines")
    name = ", ".join(machines) if isinstance(machines, dict) and machines else _machine_name(data)
    return [{"file": path, "machine": name, "session": data.get("session"),
             "written": data.get("written"), "seed": data.get("seed"), "rounds": data.get("rounds"),
             "exitstatus": data.get("exitstatus"), "statistics": data.get("statistics"),
             "verdict_method": data.get("verdict_method"), "ci": block.get("ci") or {},
             "commit": block.get("commit"), "tests": len(data.get("tests") or []),
             **({"footprint": data["footprint"]} if data.get("footprint") else {})}]


def _agree(inputs: list[tuple[str, dict[str, Any]]], what: str, value: Any) -> Any:
    """The value all runs share; MergeError naming the first two that differ."""
    first_path, first = inputs[0]
    for path, data in inputs[1:]:
        if value(data) != value(first):
            raise MergeError(f"runs with different {what}: {first_path} has {value(first)!r}, {path} has "
                             f"{value(data)!r}; merge joins runs made with the same settings")
    return value(first)


def _confidence(data: dict[str, Any]) -> Any:
    stats = data.get("statistics")
    return stats.get("confidence") if isinstance(stats, dict) else None


def _correction(data: dict[str, Any]) -> Any:
    method = data.get("verdict_method")
    return method.get("correction") if isinstance(method, dict) else None


def _common(values: list[Any]) -> Any:
    """The value when all agree, else None."""
    return values[0] if values and all(v == values[0] for v in values) else None


def joined_environments(machines: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The head's ``environments``: per name, the first machine's metadata;
    an acceleration that differs between machines reads ``kvm/tcg``, and
    an environment of several machines lists them (``machines``)."""
    out: dict[str, dict[str, Any]] = {}
    seen: dict[str, list[str]] = {}
    accels: dict[str, list[str]] = {}
    for name, m in machines.items():
        for env, meta in (m.get("environments") or {}).items():
            if not isinstance(meta, dict):
                continue
            out.setdefault(env, dict(meta))
            seen.setdefault(env, []).append(name)
            if meta.get("accel") and meta["accel"] not in accels.setdefault(env, []):
                accels[env].append(meta["accel"])
    for env, names in seen.items():
        if len(names) > 1:
            out[env]["machines"] = names
        if len(accels.get(env, [])) > 1:
            out[env]["accel"] = "/".join(accels[env])
    return out


def joined_host(machines: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The head's ``host``: one machine's as it is; for several, virtual
    when any is, and a label naming each."""
    hosts = {n: m.get("host") if isinstance(m.get("host"), dict) else {} for n, m in machines.items()}
    if len(hosts) == 1:
        return next(iter(hosts.values()))
    labels = [f"{n}: {h.get('label') or ('a virtual machine' if h.get('virtual') else 'not virtualized')}"
              for n, h in hosts.items()]
    return {"virtual": any(h.get("virtual") for h in hosts.values()),
            "hypervisor": _common([h.get("hypervisor") for h in hosts.values()]),
            "evidence": [f"{n}: {e}" for n, h in hosts.items() for e in h.get("evidence") or []],
            "label": "; ".join(labels)}


def _verdict_method(inputs: list[tuple[str, dict[str, Any]]]) -> dict[str, Any] | None:
    methods = [d.get("verdict_method") for _, d in inputs if isinstance(d.get("verdict_method"), dict)]
    if not methods:
        return None
    out = dict(methods[0])
    sizes = [m.get("family_size") for m in methods]
    if all(isinstance(s, int) for s in sizes):
        # Each run corrected its own family: the merged verdicts are theirs.
        out["family_size"] = sum(sizes) if out.get("correction") != "holm" or len(sizes) == 1 \
            else " + ".join(map(str, sizes)) + " (each run its own family)"
    return out


def _footprint(inputs: list[tuple[str, dict[str, Any]]]) -> dict[str, Any] | None:
    """One run's footprint as it is; several runs' claims together (their
    environments' figures stay with each run, under ``merged.runs``)."""
    prints = [(p, d["footprint"]) for p, d in inputs if isinstance(d.get("footprint"), dict)]
    if len(prints) == 1:
        return prints[0][1]
    if not prints:
        return None
    claims = [dict(c, run=p) for p, fp in prints for c in fp.get("claims") or [] if isinstance(c, dict)]
    return {"environments": {}, "claims": claims, "note": "per run: merged.runs[].footprint"}


# --------------------------------------------------------------------------
# the tests


def _records(path: str, data: dict[str, Any]) -> list[tuple[str, str, Any]]:
    """(node id, machine, ItemRecord) of each test of a run."""
    try:
        doc = RunDocument.from_json(data, path)
    except DocumentError as exc:
        raise MergeError(str(exc)) from None
    machine = _machine_name(data)
    out = []
    for rec in doc.tests:
        first = rec.data or (rec.envs[0].data if rec.envs else rec.claims[0].data if rec.claims else {})
        out.append((first.get("nodeid") or rec.nodeid, first.get("machine") or machine, rec))
    return out


def _claim_texts(rec: Any) -> list[str]:
    return sorted(c.claim for c in rec.claims)


def _labelled(entry: dict[str, Any], nodeid: str, machine: str, label: str) -> dict[str, Any]:
    out = dict(entry, test=label, machine=machine)
    if label != nodeid:
        out["nodeid"] = nodeid
    else:
        out.pop("nodeid", None)
    return out


def merge_runs(inputs: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """The merged document of ``inputs`` ((name, document) pairs, as
    :func:`load_inputs` gives); MergeError when they cannot be merged."""
    if not inputs:
        raise MergeError("no run to merge")
    for path, data in inputs:
        if isinstance(data, dict) and data.get("version") == 1:
            raise MergeError(f"{path}: a version-1 --virt-json file (no rounds, no machine): merge reads versions "
                             "2 and 3; write the run again with this version")
        try:
            runcompare.check_run(data, path)
        except runcompare.RunFileError as exc:
            raise MergeError(str(exc)) from None
    _agree(inputs, "document versions (write every shard with the same pytest-virtoverhead)",
           lambda d: d.get("version"))
    baseline = _agree(inputs, "baselines", lambda d: d.get("baseline"))
    _agree(inputs, "confidence levels", _confidence)
    _agree(inputs, "verdict corrections", _correction)

    where: dict[tuple[str, str], str] = {}  # (node id, machine) -> path
    claims_of: dict[str, tuple[str, str, list[str]]] = {}  # node id -> (path, machine, claims)
    kept: list[tuple[str, str, Any]] = []
    for path, data in inputs:
        for nodeid, machine, rec in _records(path, data):
            if (nodeid, machine) in where:
                raise MergeError(f"{nodeid} was measured twice on machine {machine!r}: in {where[nodeid, machine]} "
                                 f"and in {path}; merge keeps one measurement per test and host (two sessions "
                                 "are not pooled): do the shards overlap? Merge one of the two runs")
            where[nodeid, machine] = path
            texts = _claim_texts(rec)
            if nodeid in claims_of and claims_of[nodeid][2] != texts:
                other, other_machine, other_texts = claims_of[nodeid]
                raise MergeError(f"{nodeid} has different claims in {other} (machine {other_machine!r}): "
                                 f"{other_texts} and in {path} (machine {machine!r}): {texts}; a test is judged "
                                 "by one set of claims: run every shard from the same commit and settings")
            claims_of.setdefault(nodeid, (path, machine, texts))
            kept.append((nodeid, machine, rec))

    hosts_of: dict[str, list[str]] = {}
    for nodeid, machine, _ in kept:
        hosts_of.setdefault(nodeid, []).append(machine)
    tests, results, claims = [], [], []
    for nodeid, machine, rec in kept:
        label = nodeid if len(hosts_of[nodeid]) == 1 else f"{nodeid}{LABEL_SEP}{machine}"
        if rec.data is not None:
            tests.append(_labelled(rec.data, nodeid, machine, label))
        results += [_labelled(e.data, nodeid, machine, label) for e in rec.envs]
        claims += [_labelled(c.data, nodeid, machine, label) for c in rec.claims]

    machines: dict[str, dict[str, Any]] = {}
    for path, data in inputs:
        for name, m in _machines_of(data).items():
            known = machines.setdefault(name, {**m, "environments": dict(m.get("environments") or {}), "runs": []})
            for env, meta in (m.get("environments") or {}).items():
                known["environments"].setdefault(env, meta)
            known["runs"].append(path)
    runs = [r for path, data in inputs for r in _runs_of(path, data)]
    datas = [d for _, d in inputs]
    written = [d["written"] for d in datas if isinstance(d.get("written"), str)]
    statuses = [d.get("exitstatus") for d in datas if isinstance(d.get("exitstatus"), int)]
    noises = [d.get("noise") for d in datas if isinstance(d.get("noise"), dict)]
    head: dict[str, Any] = {
        "version": JSON_VERSION,
        "written": max(written) if written else None,  # `history` orders runs by it
        "seed": _common([d.get("seed") for d in datas]),
        "baseline": baseline,
        "rounds": _common([d.get("rounds") for d in datas]),
        "host": joined_host(machines),
    }
    if len(machines) == 1:
        head["machine"] = next(iter(machines.values())).get("machine")
    head.update({
        "machines": machines,
        "statistics": _common([d.get("statistics") for d in datas]) or
        {"confidence": _confidence(datas[0]), "note": "settings differ between runs: see merged.runs"},
        "noise": {**(noises[0] if noises else {}),
                  "disturbed_rounds": sum(n.get("disturbed_rounds") or 0 for n in noises),
                  "retried_rounds": sum(n.get("retried_rounds") or 0 for n in noises)},
        "environments": joined_environments(machines),
        "results": results, "claims": claims, "tests": tests,
        "session": None, "interrupted": False, "aborted": False,
        "exitstatus": max(statuses) if statuses else 0,
    })
    costs = [t["cost"] for t in tests if isinstance(t.get("cost"), dict)]
    if costs:
        # As a run's: its tests' accounts summed (tests[].cost).
        head["cost"] = phases.total(costs)
    footprint = _footprint(inputs)
    if footprint is not None:
        head["footprint"] = footprint
    method = _verdict_method(inputs)
    if method is not None:
        head["verdict_method"] = method
    head["merged"] = {"runs": runs, "machines": list(machines),
                      "relabelled": sorted({n for n, ms in hosts_of.items() if len(ms) > 1})}
    return head


def summary(merged: dict[str, Any]) -> str:
    """One line on what was merged."""
    info = merged["merged"]
    text = (f"merged {len(info['runs'])} run(s) of {len(info['machines'])} machine(s) "
            f"({', '.join(info['machines'])}): {len(merged['tests'])} test record(s), "
            f"{len(merged['claims'])} claim(s)")
    if info["relabelled"]:
        text += (f"; {len(info['relabelled'])} test(s) measured on more than one machine, kept apart as "
                 f"'NODEID{LABEL_SEP}MACHINE'")
    return text
