"""``--virt-explain``: attribution by ablation.

For each container environment of the run, ablation environments that
switch one mechanism off each (:data:`ABLATIONS`: the options the container
backend can switch) run beside it in the same rounds. The share of the
container's overhead an ablation removes comes from the rounds
themselves: per round, the ablation's paired ratio to the baseline over
the container's (both from their own blocks of that round, in the same
worker process slot), clustered by process like every ratio
(:func:`.stats.cluster_estimate`). For a VM there is nothing to switch here;
the explanation says what its accelerator is and what that allows one to
attribute.

Nothing here imports pytest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable

from ..envs.base import EnvSpec
from ..judge import stats


@dataclass(frozen=True)
class Ablation:
    """An ablation environment: ``parent`` with ``options`` changed."""

    name: str
    parent: str
    options: tuple[tuple[str, str], ...]
    what: str


#: kind -> (name suffix, options, what it removes). Options the container
#: backend takes (envs/container/backend.py ``option_help``).
ABLATIONS: dict[str, list[tuple[str, dict[str, str], str]]] = {
    "container": [
        ("noseccomp", {"seccomp": "unconfined"}, "seccomp off"),
        ("volume", {"scratch": "volume"}, "scratch on a docker volume, not the overlayfs writable layer"),
    ],
}


def ablation_specs(specs: Iterable[EnvSpec]) -> list[tuple[EnvSpec, Ablation]]:
    """The ablation environments of ``specs``: one per mechanism each
    environment of a kind in :data:`ABLATIONS` has on (an environment that
    already runs with the option is not ablated again), named
    ``PARENT_SUFFIX`` (``container_noseccomp``)."""
    specs = list(specs)
    taken = {sp.name for sp in specs}
    out = []
    for sp in specs:
        for suffix, options, what in ABLATIONS.get(sp.kind, []):
            if all(sp.options.get(k) == v for k, v in options.items()):
                continue
            name = f"{sp.name}_{suffix}"
            if name in taken:
                continue
            taken.add(name)
            out.append((EnvSpec(name, sp.kind, {**sp.options, **options}),
                        Ablation(name, sp.name, tuple(sorted(options.items())), what)))
    return out


def removed_share(ratio: float, q: float, q_ci: tuple[float, float]) -> tuple[float, tuple[float, float]]:
    """The share of an overhead ``ratio`` (environment / baseline) that an
    ablation removes, on the log scale: the ablation's time is ``q`` times
    the environment's, so its own ratio is ``ratio * q`` and it removes
    ``-log q / log ratio`` of ``log ratio``. The interval is ``q``'s, with
    ``ratio`` at its estimate. NaN when the ratio is 1 or not finite."""
    if not (math.isfinite(ratio) and ratio > 0 and ratio != 1 and q > 0):
        return math.nan, (math.nan, math.nan)
    lr = math.log(ratio)

    def share(x: float) -> float:
        return -math.log(x) / lr if x > 0 and math.isfinite(x) else math.nan

    lo, hi = share(q_ci[0]), share(q_ci[1])
    return share(q), (min(lo, hi), max(lo, hi))


def ablation_estimate(res: Any, ablation: str, parent: str, confidence: float = 0.95) -> stats.Estimate:
    """The ablation's time over its parent's, from the rounds that ran
    both: per round log(ablation's ratio to the baseline) - log(parent's),
    clustered by the parent's process slot."""
    d: list[float] = []
    slots: list[int] = []
    for rec in res.used_rounds:
        try:
            a = rec.values[ablation] / rec.paired_baseline.get(ablation, rec.values[res.baseline])
            p = rec.values[parent] / rec.paired_baseline.get(parent, rec.values[res.baseline])
        except (KeyError, ZeroDivisionError):
            continue
        if a > 0 and p > 0:
            d.append(math.log(a) - math.log(p))
            slots.append(rec.slots.get(parent, rec.slot))
    return stats.cluster_estimate(d, slots, confidence=confidence)


def attribution(res: Any, ab: Ablation, confidence: float = 0.95) -> dict[str, Any] | None:
    """One ablation's entry for one test: ``ratio`` (the parent's),
    ``ablated`` (the ablation's time over the parent's, with ``ablated_ci``),
    ``removed`` (the share of the parent's overhead it removes, with
    ``removed_ci``), ``resolved`` (whether the parent's interval excludes 1:
    without that there is no overhead to share out) and ``text``."""
    if ab.parent not in res.ratios or ab.name not in res.samples:
        return None
    ratio, (lo, hi) = res.ratios[ab.parent]
    est = ablation_estimate(res, ab.name, ab.parent, confidence)
    q, q_ci = est.ratio, est.ci
    share, share_ci = removed_share(ratio, q, q_ci)
    resolved = lo > 1 or hi < 1
    level = f"{confidence:.0%}"
    text = (f"{ab.what} ({ab.name}): time x{q:.3f} [{q_ci[0]:.3f}, {q_ci[1]:.3f}] of {ab.parent}'s")
    if resolved and math.isfinite(share):
        text += (f": removes {share:.0%} [{share_ci[0]:.0%}, {share_ci[1]:.0%}] of {ab.parent}'s overhead "
                 f"(x{ratio:.3f} over {res.baseline}; {level} interval with that overhead at its estimate)")
    else:
        text += f": {ab.parent}'s own overhead is not resolved ({level} interval [{lo:.3f}, {hi:.3f}] holds 1)"
    return {"test": res.nodeid, "env": ab.name, "parent": ab.parent, "what": ab.what,
            "options": dict(ab.options), "ratio": ratio, "ablated": q, "ablated_ci": list(q_ci),
            "removed": share, "removed_ci": list(share_ci), "resolved": resolved, "method": est.method,
            "text": text}


def vm_notes(metadata: dict[str, dict[str, Any]]) -> list[str]:
    """What ``--virt-explain`` can say about each VM: its accelerator and
    what can be attributed with it."""
    out = []
    for name, meta in metadata.items():
        if meta.get("kind") != "vm" or meta.get("unavailable"):
            continue
        accel = meta.get("accel") or "unknown"
        why = f" ({meta['accel_reason']})" if meta.get("accel_reason") else ""
        if accel == "tcg":
            out.append(f"{name}: accelerator tcg{why}: QEMU translates every guest instruction, so its "
                       "overhead is emulation, not virtualization; it cannot be attributed to VM exits, "
                       "virtual devices or nested paging, and no ablation separates them. Its counters are "
                       "the guest kernel's (CPU time under emulation).")
        elif accel == "kvm":
            out.append(f"{name}: accelerator kvm{why}: guest instructions run natively; this plugin has no "
                       "VM ablation yet, so the resource counters (system time, faults, switches: the guest "
                       "kernel's) are the attribution it offers.")
        else:
            out.append(f"{name}: accelerator {accel}{why}: no attribution.")
    return out


def explain_all(results: Iterable[Any], ablations: Iterable[Ablation], metadata: dict[str, dict[str, Any]],
                confidence: float = 0.95) -> dict[str, Any]:
    """The JSON's ``explain``: ``ablations`` (one entry per test and
    ablation measured) and ``vm`` (the VMs' notes)."""
    ablations = list(ablations)
    entries = [e for res in results for ab in ablations if (e := attribution(res, ab, confidence)) is not None]
    return {"ablations": entries, "vm": vm_notes(metadata)}


def explain_lines(data: dict[str, Any]) -> list[str]:
    """The terminal's explanation section."""
    out = []
    for e in data.get("ablations", []):
        out.append(f"{e['test']}: {e['text']}")
    out.extend(data.get("vm", []))
    return out
