"""The worker processes a compared test runs in: how many per environment,
their hash seeds, which one a round's block uses, and starting the missing
ones side by side before the test's rounds.

Nothing here imports pytest.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from ..envs.errors import EnvError, RemoteError
from ..envs.handle import Environment
from ..results import ItemResult
from .config import Settings
from .events import Listener, WorkerStarting
from .planning import stable_seed


def hash_seed(settings: Settings, slot: int, env: str) -> int:
    """PYTHONHASHSEED of process ``slot`` of ``env``: the same for process
    K of every environment unless --virt-hash-seed=random."""
    parts: tuple[Any, ...] = (settings.seed, "hash", slot)
    if settings.hash_seed == "random":
        parts += (env,)
    return stable_seed(*parts) % 4294967296


def block_slot(result: ItemResult, slot: int, env: str, base: str | None) -> int:
    """The worker process env's block uses in a round of slot ``slot``,
    on both sides: the slot folded onto the processes both have, so
    process K of env always meets process K of the baseline (the same
    hash seed, and one cluster per pair)."""
    counts = result.process_counts
    have = min(counts.get(env, slot), counts.get(base, slot) if base else slot)
    return (slot - 1) % max(1, have) + 1


def prepare(result: ItemResult, live: dict[str, Environment], rounds: int, settings: Settings,
            key: tuple[tuple[str, ...], tuple[str, ...]], start_cpus: Callable[[], tuple[int, ...] | None],
            progress: Listener) -> None:
    """Start the worker processes each environment lacks (they serve
    every later test too) and open their pytest sessions (``key``: the
    node ids and pytest arguments); an environment that cannot is removed
    from ``live`` and noted unavailable in ``result``.

    Every environment's missing processes start at once, side by side
    (:meth:`.Environment.prepare`), on the spare CPUs of the host where
    there are any (``start_cpus``: CPUs no measuring session holds),
    each moving onto the environment's measuring CPUs once collected:
    interpreters and collection cost ~0.2 s a process natively, and a
    test of 12 rounds wants 12 processes per environment. Nothing is
    measured while they start."""
    counts = {name: settings.processes_for(name, rounds) for name in live}
    wanted: dict[str, dict[int, dict[str, str]]] = {}
    for name, env in live.items():
        have = env.processes
        missing = {slot: {"PYTHONHASHSEED": str(hash_seed(settings, slot, name))}
                   for slot in range(1, counts[name] + 1)
                   if slot not in have or env.session_key(slot) != key}
        if missing:
            wanted[name] = missing
            for slot in missing:
                progress(WorkerStarting(result.nodeid, name, slot))
    if wanted:
        start = start_cpus()
        nodeids, args = key

        def one(name: str) -> tuple[str, dict[int, str] | str]:
            try:
                return name, live[name].prepare(wanted[name], nodeids, args, start)
            except (EnvError, RemoteError) as exc:
                return name, str(exc)

        t0 = time.monotonic()
        with ThreadPoolExecutor(max_workers=len(wanted)) as pool:
            outcomes = dict(pool.map(one, list(wanted)))
        result.phases.add("process_start", time.monotonic() - t0, sum(len(w) for w in wanted.values()))
        for name, failed in outcomes.items():
            if failed:
                why = failed if isinstance(failed, str) else "; ".join(
                    f"process {slot}: {text}" for slot, text in sorted(failed.items()))
                result.unavailable[name] = f"environment {name!r} could not start its worker processes: {why}"
                del live[name]
    for name in live:
        count = counts[name]
        result.processes[name] = {k: v for k, v in live[name].processes.items() if k <= count}
        result.process_counts[name] = count
        result.hash_seeds[name] = {slot: hash_seed(settings, slot, name) for slot in range(1, count + 1)}
