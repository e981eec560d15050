"""pytest-xdist: one measuring CPU per worker, one report for the run.

The controller (the pytest process that runs ``-n N`` or ``-d --tx ...``)
measures nothing. At configure time it shares out ``--virt-cpus``, one CPU
per local worker (:mod:`.xdistcpus`; more workers than CPUs is a usage
error), and hands each worker its CPU, the run's seed and, under
``--virt-correction=holm``, a channel to meet the other workers
(:mod:`.xdistfamily`), in ``pytest_configure_node`` through
``node.workerinput``. A worker pins every environment it starts to its CPU
and takes the host-wide CPU lock for it (:mod:`.hostlock`, the safety net
against other sessions), measures the tests xdist sends it, and at its
session's end sends its results whole (:mod:`.results.wire`), its
environments' metadata, footprint and machine in ``workeroutput``. The
controller gathers them as each worker goes down and runs the serial
session's finishing code on them: one terminal table, one
``--virt-json``, Markdown and HTML report.

A worker on another host (``--tx ssh=...``: :mod:`.xdisthosts`) chooses
its own measuring CPU there, under that host's lock, and the controller
places its tests on its machine in the run document.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
from typing import TYPE_CHECKING, Any, Iterator

import pytest

from ..results.wire import from_plain, to_plain
from .xdistcpus import assign, offered, tx_count
from .xdistfamily import Family, exchange
from .xdisthosts import gateway_is_local, place, remote_specs

if TYPE_CHECKING:
    from .virtsession import VirtSession

#: The plugin's key in xdist's workerinput and workeroutput.
KEY = "virtoverhead"


def worker_input(config: pytest.Config) -> dict[str, Any] | None:
    """What the controller handed this xdist worker (None: not a worker)."""
    return getattr(config, "workerinput", {}).get(KEY)


def is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def distributed(config: pytest.Config) -> bool:
    """Is this the controller of a pytest-xdist run (``-n N``, ``-d --tx``)?"""
    opt = config.option
    return (not is_worker(config) and getattr(opt, "dist", "no") != "no" and bool(getattr(opt, "tx", None))
            and not getattr(opt, "collectonly", False))


def _cpus_text(config: pytest.Config) -> str:
    return str(config.option.virt_cpus or config.getini("virt_cpus") or "auto")


def auto_workers(config: pytest.Config) -> int | None:
    """``-n auto`` under --virt-compare: one worker per measuring CPU that
    --virt-cpus offers (None: not comparing, xdist decides)."""
    if not getattr(config.option, "virt_compare", False):
        return None
    try:
        cpus = offered(_cpus_text(config), os.sched_getaffinity(0))
    except ValueError:
        return 1  # the usage error is raised at configure time
    return 1 if cpus is None else max(1, len(cpus))


def configure(config: pytest.Config, state: VirtSession) -> None:
    """At activation: on the controller, the CPUs of the workers (or the
    usage error) and the controller's hooks; on a worker, the CPU, seed and
    meeting place the controller chose."""
    win = worker_input(config)
    if win is not None:
        _configure_worker(state, win)
        return
    if not distributed(config) or not state.settings.compare:
        return
    opt = config.option
    if opt.dist == "each":
        raise pytest.UsageError(
            "--dist each runs every test in every worker: each compared test would be measured once per worker "
            "and reported as many times; share the tests out instead (--dist load, loadscope, loadfile, "
            "loadgroup or worksteal)")
    remote = remote_specs(opt.tx)
    # --virt-cpus describes this host: it is shared out among the workers
    # started here; a worker on another host chooses its own CPU there.
    workers = tx_count([spec for spec in opt.tx if spec not in remote])
    how = f"-n {opt.numprocesses}" if getattr(opt, "numprocesses", None) else f"--tx {' '.join(opt.tx)}"
    try:
        cpus = assign(_cpus_text(config), workers, how, sorted(os.sched_getaffinity(0))) if workers else []
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    cpus = _prefer_free(config, state, cpus)
    controller = Controller(state, cpus)
    state.controller = controller
    config.pluginmanager.register(controller, "virtoverhead-xdist")


def _prefer_free(config: pytest.Config, state: VirtSession, cpus: list[tuple[int, ...] | None]) -> list[tuple[int, ...] | None]:
    """Another measuring session on the host may hold some of the CPUs
    (:mod:`.hostlock`). Under ``auto`` the workers take free ones where
    there are enough; otherwise say now which worker will wait for whom (a
    worker's own terminal is not shown), or refuse under --virt-cpu-wait=0."""
    from . import hostlock

    locks = hostlock.CpuLocks()
    info = hostlock.session_info(state.ctx.session_id, state.ctx.rootdir)

    def holder(cpu: tuple[int, ...] | None) -> dict | None:
        if cpu is None:
            return None
        busy = locks.try_lock(cpu, info)
        locks.release()
        return busy[cpu[0]] if busy else None

    held = {cpu: holder(cpu) for cpu in cpus}
    if state.settings.cpus_auto and any(h is not None for h in held.values()):
        spare = [(c,) for c in offered("auto", os.sched_getaffinity(0)) if (c,) not in held]
        free = [c for c in cpus if held[c] is None] + [c for c in spare if holder(c) is None]
        if len(free) >= len(cpus):
            return free[:len(cpus)]
    busy = {cpu: h for cpu, h in held.items() if h is not None}
    if not busy:
        return cpus
    lines = [f"CPU {','.join(map(str, cpu))} is in use by {hostlock.describe(h)}" for cpu, h in busy.items()]
    if state.settings.cpu_wait <= 0:
        raise pytest.UsageError("--virt-cpus: " + "; ".join(lines) + ": two sessions measuring on one CPU would "
                                "each time the other's work. Let that session finish, pass --virt-cpu-wait=SECONDS "
                                "to wait for it, or --virt-cpus=LIST to measure on other CPUs")
    for line in lines:
        sys.stderr.write(f"virtoverhead: {line}: the xdist worker given it waits for it, up to "
                         f"{state.settings.cpu_wait:g} s (--virt-cpu-wait)\n")
    return cpus


def chooses_own_cpu(config: pytest.Config) -> bool:
    """Is this an xdist worker on another host than its controller's? It
    measures on a CPU of its own choosing (``auto`` on its host): the
    controller's --virt-cpus names the controller's CPUs."""
    win = worker_input(config)
    return bool(win and win.get("own_cpu"))


def _configure_worker(state: VirtSession, win: dict[str, Any]) -> None:
    if not win.get("own_cpu"):
        # The controller chose: never another CPU behind its back (cpus_auto off).
        state.use_cpus(tuple(win["cpus"]) if win.get("cpus") else None, cpus_auto=False)
    state.settings = dataclasses.replace(state.settings, seed=int(win["seed"]))
    state.ctx.stagger_vm_starts = True
    if win.get("family") is not None:
        state.peers = lambda: exchange(state, win["family"])


class Controller:
    """The controller's side: CPUs handed out, the workers' results gathered."""

    def __init__(self, state: VirtSession, cpus: list[tuple[int, ...] | None]):
        self.state = state
        self.planned = list(cpus)
        self.free = list(cpus)
        self.cpus: dict[str, tuple[int, ...] | None] = {}
        self.order: list[str] = []
        self.workers: dict[str, dict[str, Any]] = {}
        self.metadata: dict[str, dict[str, Any]] = {}
        self.footprints: dict[str, Any] = {}
        #: Per worker: the machine it measured on (its block, host, environments).
        self.hosts: dict[str, dict[str, Any]] = {}
        #: Workers on other hosts, which chose their own CPUs there.
        self.remote: set[str] = set()
        self.family = Family() if state.settings.correction == "holm" else None

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        wid = node.workerinput["workerid"]
        family = self.family.channel_for(wid, node.gateway) if self.family else None
        if not gateway_is_local(node.gateway.spec):
            # Another host: it chooses its CPU there, under that host's lock.
            self.remote.add(wid)
            node.workerinput[KEY] = {"cpus": None, "own_cpu": True, "seed": self.state.settings.seed,
                                     "workerid": wid, "family": family}
            return
        # A worker that replaces a crashed one takes the CPU that one left.
        cpu = self.free.pop(0) if self.free else None
        self.cpus[wid] = cpu
        node.workerinput[KEY] = {"cpus": list(cpu) if cpu else None, "seed": self.state.settings.seed,
                                 "workerid": wid, "family": family}

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        if not self.order:
            self.order = list(ids)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        wid = node.workerinput["workerid"]
        if wid in self.cpus:
            self.free.append(self.cpus.pop(wid))
        if self.family:
            self.family.leave(wid)
        out = getattr(node, "workeroutput", {}).get(KEY)
        if out is None:
            if error:
                self.state.output_failures.append(
                    f"virtoverhead: xdist worker {wid} went down ({error}): the tests it measured are not "
                    "in the report")
            return
        self.gather(wid, out)

    def gather(self, wid: str, out: dict[str, Any]) -> None:
        state = self.state
        results = [from_plain(r) for r in out["results"]]
        state.results.extend(results)
        rank: dict[str, int] = {}
        for i, nodeid in enumerate(self.order):
            rank.setdefault(nodeid, i)
            rank.setdefault(nodeid.rsplit("@", 1)[0], i)  # --dist loadgroup's "@group" suffix
        state.results.sort(key=lambda r: rank.get(r.nodeid, len(rank)))
        machine = out.get("machine") if isinstance(out.get("machine"), dict) else None
        self.workers[wid] = {"cpus": out["cpus"], "tests": [r.nodeid for r in results],
                             "session": out["session"], "reaped": out.get("reaped", []),
                             **({"machine": machine.get("name")} if machine else {}),
                             **({"cpus_chosen_by": "the worker, on its host"} if wid in self.remote else {}),
                             **({"family_size": out["family_size"]} if "family_size" in out else {})}
        self.hosts[wid] = {"machine": machine, "host": out.get("host") or {}, "environments": out["metadata"]}
        for name, meta in out["metadata"].items():
            # The first worker that started an environment describes it;
            # each worker's own CPUs are listed beside.
            cpus = dict(self.metadata.get(name, {}).get("xdist_cpus", {}))
            if name not in self.metadata or ("unavailable" in self.metadata[name] and "unavailable" not in meta):
                self.metadata[name] = dict(meta)
            if "unavailable" not in meta:
                cpus[wid] = meta.get("cpus_pinned") or meta.get("cpuset") or out["cpus"] or "all"
            self.metadata[name]["xdist_cpus"] = dict(sorted(cpus.items()))
        if out.get("footprint"):
            self.footprints[wid] = out["footprint"]
        state.output_failures.extend(f"{m} (xdist worker {wid})" for m in out.get("failures", []))
        state.pool.reaped.extend(r for r in out.get("reaped", []) if r not in state.pool.reaped)

    def footprint(self) -> Any:
        """The first worker's footprint (each worker has environments of its
        own, alike), naming the worker; the others' verdicts on footprint
        claims came as failures."""
        if not self.footprints:
            return None
        # A worker whose environments have figures (one that measured).
        wid = min(self.footprints, key=lambda w: (not any(
            e.get("figures") for e in self.footprints[w].get("environments", {}).values()), w))
        return {**self.footprints[wid], "xdist_worker": wid}

    def document_extra(self) -> dict[str, Any]:
        """The run document's ``xdist`` block: each worker's CPUs and tests."""
        return {"xdist": {"workers": dict(sorted(self.workers.items()))}}

    def place(self, data: dict[str, Any]) -> dict[str, Any]:
        """The run document with its tests on the machines that measured
        them, where workers ran on other hosts (:func:`.xdisthosts.place`)."""
        data, notes = place(data, self.workers, self.hosts)
        self.state.output_notes.extend(notes)
        return data

    def header(self) -> str:
        """``CPU 1, 0``: the CPUs the workers take, in order; then how many
        workers on other hosts choose their own there."""
        remote = remote_specs(self.state.config.option.tx)
        text = "CPU " + ", ".join(",".join(map(str, cpu)) if cpu else "all" for cpu in self.planned)
        if not remote:
            return text
        own = f"{tx_count(remote)} worker(s) on other hosts choose their own CPU there"
        return f"{text}; {own}" if self.planned else own

    def close(self) -> None:
        """Nothing left to clean up: the family's channels end with their gateways."""


@contextlib.contextmanager
def reporting(item: pytest.Item) -> Iterator[None]:
    """Around the reports of a test kept back for Holm's correction and
    logged after xdist's loop: an xdist worker checks that a report belongs
    to the test it last ran (its ``item_index``), so point it at this one
    for the while."""
    interactor = next((p for p in item.config.pluginmanager.get_plugins()
                       if type(p).__name__ == "WorkerInteractor" and hasattr(p, "item_index")), None)
    if interactor is None:
        yield
        return
    before = interactor.item_index
    try:
        interactor.item_index = item.session.items.index(item)
        yield
    finally:
        interactor.item_index = before


def send(config: pytest.Config, state: VirtSession) -> None:
    """A worker's end: its results whole, its environments' metadata and
    footprint, into ``workeroutput`` (xdist sends it to the controller)."""
    results = []
    failures = list(state.output_failures)
    for res in state.results:
        try:
            plain = to_plain(res)
        except TypeError as exc:  # a field this version cannot send: say so, send the others
            failures.append(f"virtoverhead: the results of {res.nodeid} could not be sent to the controller: {exc}")
            continue
        plain["fields"]["reports"] = None  # its reports reached the controller through xdist already
        results.append(plain)
    started = state.pool.started()
    metadata = json.loads(json.dumps(
        {n: m for n, m in state.pool.metadata().items() if n in started or "unavailable" in m}, default=str))
    config.workeroutput[KEY] = {  # type: ignore[attr-defined]
        # The environments it started, or could not start (not those it never needed).
        "results": results, "metadata": metadata, **_machine(config, metadata),
        "footprint": json.loads(json.dumps(state.footprint, default=str)) if state.footprint else None,
        "failures": failures, "cpus": list(state.settings.cpus or []),
        "session": state.ctx.session_id, "reaped": list(state.pool.reaped),
        # Under holm: the family its claims were corrected in (the whole run's).
        **({"family_size": state.method.get("family_size")}
           if state.method and state.settings.correction == "holm" else {})}


def _machine(config: pytest.Config, metadata: dict[str, Any]) -> dict[str, Any]:
    """This worker's host, as a run document names it (the controller
    places its tests there when it is not the controller's host)."""
    from ..guest import noise
    from ..results import machine
    from .finish import machine_inputs

    try:
        host = noise.host_virtualization()
        inputs = machine_inputs(config)
        block = machine.describe(metadata, host, ini_name=inputs["machine_name"], rootdir=inputs["rootdir"])
        return json.loads(json.dumps({"machine": block, "host": {**host, "label": noise.host_label(host)}},
                                     default=str))
    except Exception:  # noqa: BLE001 - the results matter more: the controller's machine names them
        return {}
