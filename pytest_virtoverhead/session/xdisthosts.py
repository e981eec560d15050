"""pytest-xdist workers on other hosts (``--tx ssh=HOST//python=...``,
``socket=``, a ``popen`` behind a ``via=`` proxy): which workers those are,
and the run document of a run measured on more than one host.

- **Which CPU.** The controller's ``--virt-cpus`` describes the
  controller's machine, so it is shared out among the local (``popen``)
  workers only; a worker on another host chooses its own measuring CPU
  there, as a serial session on that host would (``auto``: the host's last
  CPU, or another free one), under that host's CPU lock.
- **Which machine.** Every worker sends its host's ``machine`` block
  (:func:`.results.machine.describe`, on its host: ``VIRTOVERHEAD_MACHINE``
  in the worker's environment, else the ini key, else its hostname) and
  ``host``. When the tests were measured on machines other than the
  controller's, :func:`place` gives each entry of ``tests``, ``results``
  and ``claims`` the ``machine`` that measured it and the head
  ``machines`` (per machine: its block, host and environments), as
  ``pytest-virtoverhead merge`` does (:mod:`.runmerge`): times are never
  pooled across hosts, and the document merges and compares like a merged
  one. A test is measured by one worker, so its id stays plain.

Standard library only; no pytest.
"""

from __future__ import annotations

import re
from typing import Any, Iterable

from ..offline import runmerge


def _keys(spec: str) -> set[str]:
    """The keys of an execnet spec: ``2*ssh=h//python=p`` -> {ssh, python}."""
    body = re.sub(r"^\s*\d+\s*\*", "", spec)
    return {part.split("=", 1)[0].strip() for part in body.split("//") if part.strip()}


def is_local(spec: str) -> bool:
    """Does an xdist ``--tx`` spec start its workers on this host?"""
    keys = _keys(spec)
    return "popen" in keys and "via" not in keys


def remote_specs(specs: Iterable[str]) -> list[str]:
    """The ``--tx`` specs whose workers run on another host."""
    return [s for s in specs if not is_local(s)]


def gateway_is_local(spec: Any) -> bool:
    """The same for an execnet ``XSpec`` (a node's ``gateway.spec``)."""
    return bool(getattr(spec, "popen", None)) and not getattr(spec, "via", None)


def place(data: dict[str, Any], workers: dict[str, dict[str, Any]],
          hosts: dict[str, dict[str, Any]]) -> tuple[dict[str, Any], list[str]]:
    """``data`` (a run document's JSON, built on the controller) with its
    tests placed on the machines that measured them, and a note for the
    terminal; ``data`` unchanged when every test was measured on the
    controller's machine. ``workers``: the xdist block's workers (their
    ``tests``); ``hosts``: per worker, the ``machine`` block, ``host`` and
    the environments' metadata it sent."""
    own = data.get("machine") if isinstance(data.get("machine"), dict) else {}
    name_of = {wid: h["machine"]["name"] for wid, h in hosts.items()
               if isinstance(h.get("machine"), dict) and h["machine"].get("name")}
    machines: dict[str, dict[str, Any]] = {}
    for wid, w in sorted(workers.items()):
        name = name_of.get(wid)
        if name is None or not w.get("tests"):
            continue
        m = machines.setdefault(name, {"machine": hosts[wid]["machine"], "host": hosts[wid].get("host") or {},
                                       "environments": {}, "xdist_workers": []})
        m["xdist_workers"].append(wid)
        for env, meta in (hosts[wid].get("environments") or {}).items():
            m["environments"].setdefault(env, meta)
    if set(machines) <= {own.get("name")}:
        return data, []
    machine_of = {nodeid: name_of[wid] for wid, w in workers.items() if wid in name_of for nodeid in w["tests"]}
    for key in ("tests", "results", "claims"):
        for entry in data.get(key) or []:
            name = machine_of.get(entry.get("nodeid") or entry.get("test"))
            if name:
                entry["machine"] = name
    joined = runmerge.joined_environments(machines)
    environments = data.get("environments") or {}
    data["environments"] = {env: {**joined.get(env, {}), **({"xdist_cpus": meta["xdist_cpus"]}
                                                           if isinstance(meta, dict) and "xdist_cpus" in meta else {})}
                            for env, meta in environments.items()}
    data["host"] = runmerge.joined_host(machines)
    if len(machines) == 1:
        data["machine"] = next(iter(machines.values()))["machine"]
    else:
        # No one machine measured the run: the controller's block stays, saying so.
        data["machine"] = {**own, "measured": own.get("name") in machines,
                           "note": "the xdist controller's host; the tests were measured on the machines "
                                   "under 'machines', each entry names its own"}
    data["machines"] = machines
    xdist = data.setdefault("xdist", {})
    if isinstance(xdist, dict):
        xdist["controller_machine"] = own.get("name")
    counts = {n: sum(1 for m in machine_of.values() if m == n) for n in machines}
    note = ("measured on " + ", ".join(f"{n} ({counts[n]} test(s), xdist worker(s) {', '.join(m['xdist_workers'])})"
                                      for n, m in machines.items())
            + f"; the controller runs on {own.get('name')}: each test's times are from its one machine")
    return data, [note]
