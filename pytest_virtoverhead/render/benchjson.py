"""Compared tests as pytest-benchmark entries.

Under ``--virt-compare`` the host never runs a marked test itself: each
environment's worker does, and the host holds only the samples. So that
``--benchmark-json``, ``--benchmark-autosave``, ``--benchmark-compare`` and
the ``pytest-benchmark compare`` command see those measurements, this module
builds one pytest-benchmark :class:`~pytest_benchmark.stats.Metadata` per
test and environment from the samples and appends it to pytest-benchmark's
own session (``benchmarksession.benchmarks``). pytest-benchmark then computes
the statistics (its ``Stats``), writes the files (its JSON writer and
storage), shows its table and compares with saved runs, as for any other
benchmark.

An entry of test ``tests/x.py::test_a`` measured in environment ``vm``:

- ``name`` ``test_a[vm]``, ``fullname`` ``tests/x.py::test_a[vm]`` (a
  parametrized ``test_a[1]`` becomes ``test_a[1-vm]``), so entries of one
  environment line up across runs by ``fullname``;
- ``group`` the test's node id, so pytest-benchmark's table shows the
  environments of one test together;
- ``param`` the environment (with the test's own id), ``params``
  ``{"virt_env": "vm"}``;
- ``extra_info``: ``virt_env``, ``virt_kind``, ``virt_baseline``,
  ``virt_ratio``, ``virt_ci``, ``virt_source`` (``call``: the call phase's wall
  time per round; ``benchmark``: the ``benchmark`` fixture's samples),
  ``virt_rounds``, ``virt_claims`` and the environment's metadata
  (``accel``, ``runtime``, ``image``, ``cpuset``, limits, ...).

The whole JSON document also gets a ``virtoverhead`` key (seed, baseline,
environments) through pytest-benchmark's ``pytest_benchmark_update_json``
hook.

The entries are made from the test's record in the run document
(:class:`.ItemRecord`), what ``--virt-json`` holds of it.

Imports pytest-benchmark lazily; does nothing when it is not loaded.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Callable

from ..results import ItemRecord, json_safe

#: Environment metadata keys copied into every entry's ``extra_info``.
META_KEYS = ("kind", "accel", "accel_reason", "runtime", "mode", "image", "seccomp", "storage_driver",
             "kernel", "guest_kernel_version", "qemu_version", "machine", "cpu_model", "cpuset", "cpuset_cpus",
             "cpu_quota", "memory_limit_mb", "mem_limit_mb", "vcpus", "memory_mb", "clocksource")

PLUGIN_NAME = "virtoverhead-benchmark"


def benchmark_session(config: Any) -> Any | None:
    """pytest-benchmark's session object, or None when the plugin is not active."""
    pm = config.pluginmanager
    bs = pm.get_plugin("pytest-benchmark")
    if bs is None or not hasattr(bs, "benchmarks"):
        return None
    return bs


def entry_names(nodeid: str, env: str) -> tuple[str, str, str]:
    """(name, fullname, param) of the entry of ``nodeid`` in ``env``.

    >>> entry_names("tests/x.py::test_a", "vm")
    ('test_a[vm]', 'tests/x.py::test_a[vm]', 'vm')
    >>> entry_names("tests/x.py::C::test_b[1-a]", "vm")
    ('test_b[1-a-vm]', 'tests/x.py::C::test_b[1-a-vm]', '1-a-vm')
    """
    head, sep, name = nodeid.rpartition("::")
    func, bracket, rest = name.partition("[")
    param = f"{rest[:-1]}-{env}" if bracket and rest.endswith("]") else env
    short = f"{func}[{param}]"
    return short, f"{head}{sep}{short}", param


def extra_info(record: ItemRecord, baseline: str, env: str, meta: dict[str, Any]) -> dict[str, Any]:
    """The entry's ``extra_info``, JSON-safe (pytest-benchmark's writer
    would write NaN, which is not JSON)."""
    info: dict[str, Any] = {"virt_env": env, "virt_kind": meta.get("kind"), "virt_baseline": baseline}
    for key in META_KEYS:
        if key == "kind":
            continue
        if meta.get(key) not in (None, "", [], {}):
            info[key] = meta[key]
    entry = record.env(env)
    if env == baseline:
        info["virt_ratio"], info["virt_ci"] = 1.0, [1.0, 1.0]
    elif entry is not None and "ratio" in entry.data:
        info["virt_ratio"], info["virt_ci"] = entry.ratio, list(entry.ci or (None, None))
    info["virt_source"] = entry.source if entry is not None else None
    info["virt_rounds"] = record.rounds
    # "unit": "ratio", or "s" for a fixed-cost or absolute claim (ratio and ci in seconds).
    claims = [{"claim": c.claim, "verdict": c.verdict, "ratio": c.ratio, "ci": list(c.ci or (None, None)),
               "unit": c.unit, **({"waived": c.waived} if c.waived else {})}
              for c in record.claims if c.env == env]
    if claims:
        info["virt_claims"] = claims
    return json_safe(info)


def make_entries(record: ItemRecord, baseline: str, metadata: dict[str, dict[str, Any]]) -> list[Any]:
    """pytest-benchmark ``Metadata`` objects, one per environment with samples.

    The samples go through ``Metadata.update`` (iterations 1: a sample is
    already the time of one call), so every statistic is pytest-benchmark's
    own. A test that failed in some environment gives entries flagged with
    an error, which pytest-benchmark leaves out of its JSON as it does for
    its own failed benchmarks.
    """
    from pytest_benchmark.stats import Metadata

    entries = []
    for env_entry in record.envs:
        samples = env_entry.samples
        if not samples:
            continue
        env = env_entry.env
        name, fullname, param = entry_names(record.nodeid, env)
        # Metadata reads these attributes from the fixture that made it; a
        # compared test has no fixture on the host, so this stands in.
        stand_in = SimpleNamespace(
            name=name, fullname=fullname, group=record.nodeid, param=param,
            params={"virt_env": env}, extra_info=extra_info(record, baseline, env, metadata.get(env, {})),
            cprofile_stats=None, has_error=record.outcome == "failed",
        )
        options = {"virt_rounds": record.rounds, "virt_source": env_entry.source}
        entry = Metadata(stand_in, iterations=1, options=options)
        for sample in samples:
            entry.update(float(sample))
        entries.append(entry)
    return entries


def wanted(bs: Any, record: ItemRecord) -> bool:
    """Add entries when pytest-benchmark output is asked for, or when the
    test used the ``benchmark`` fixture (then its table is expected)."""
    if bs.json or bs.save or bs.autosave or bs.compare:
        return True
    return any(e.source == "benchmark" for e in record.envs)


def add_entries(config: Any, record: ItemRecord, baseline: str, metadata: dict[str, dict[str, Any]]) -> int:
    """Append the entries of the test ``record`` (the run's baseline
    ``baseline``) to pytest-benchmark's session; return how many."""
    bs = benchmark_session(config)
    if bs is None or not wanted(bs, record):
        return 0
    entries = make_entries(record, baseline, metadata)
    bs.benchmarks.extend(entries)
    return len(entries)


class JsonHooks:
    """pytest-benchmark hook implementations, registered only when
    pytest-benchmark is loaded (pluggy rejects hooks without a spec)."""

    def __init__(self, summary: Callable[[], dict[str, Any] | None]):
        self.summary = summary

    def pytest_benchmark_update_json(self, config: Any, benchmarks: Any, output_json: dict[str, Any]) -> None:
        summary = self.summary()
        if summary is not None and any(
                isinstance(b, dict) and "virt_env" in (b.get("extra_info") or {})
                for b in output_json.get("benchmarks", [])):
            output_json["virtoverhead"] = json_safe(summary)


def register(config: Any, summary: Callable[[], dict[str, Any] | None]) -> bool:
    """Register :class:`JsonHooks` when pytest-benchmark's hooks exist."""
    if not hasattr(config.hook, "pytest_benchmark_update_json"):
        return False
    if config.pluginmanager.get_plugin(PLUGIN_NAME) is None:
        config.pluginmanager.register(JsonHooks(summary), PLUGIN_NAME)
    return True
