"""The run document's ``machine`` block: which host measured the run.

A run is only comparable with runs of the same host, and CI shards run on
several: the block names the host (``VIRTOVERHEAD_MACHINE``, else the ini
key ``virt_machine``, else the hostname) and says what it is (CPU model,
kernel, whether it is itself a virtual machine, the Docker and
libvirt/QEMU versions its environments reported, the CPUs the run
measured on), where it ran (the CI's run and job ids, when a CI sets
them) and what it ran (the commit). ``pytest-virtoverhead merge`` keeps
the tests of each machine apart by its name (:mod:`..runmerge`).

Everything here is read without starting anything: engine versions come
from the environments' metadata already gathered, the host's own
virtualization from the document's ``host``. Nothing here imports pytest.
"""

from __future__ import annotations

import os
import platform
import socket
import subprocess
from typing import Any, Mapping

from ..guest.envfacts import cpu_model

#: Where the name comes from, in order of precedence.
NAME_VARIABLE = "VIRTOVERHEAD_MACHINE"
NAME_INI = "virt_machine"

#: The CI variables recorded when set: run, attempt, job and pipeline ids
#: (GitHub Actions, GitLab CI, Buildkite, CircleCI, Jenkins, Azure Pipelines).
CI_VARIABLES = (
    "GITHUB_RUN_ID", "GITHUB_RUN_ATTEMPT", "GITHUB_JOB", "GITHUB_WORKFLOW", "GITHUB_REPOSITORY", "RUNNER_NAME",
    "CI_PIPELINE_ID", "CI_JOB_ID", "CI_JOB_NAME", "CI_NODE_INDEX", "CI_NODE_TOTAL",
    "BUILDKITE_BUILD_ID", "BUILDKITE_JOB_ID", "BUILDKITE_PARALLEL_JOB",
    "CIRCLE_WORKFLOW_ID", "CIRCLE_BUILD_NUM", "CIRCLE_NODE_INDEX",
    "BUILD_TAG", "BUILD_BUILDID", "SYSTEM_JOBID",
)
#: Variables that name the commit when git cannot (no git, no repository).
COMMIT_VARIABLES = ("GITHUB_SHA", "CI_COMMIT_SHA", "BUILDKITE_COMMIT", "CIRCLE_SHA1", "GIT_COMMIT",
                    "BUILD_SOURCEVERSION")
#: Metadata keys of the environments that carry an engine's version.
ENGINE_KEYS = ("docker_version", "qemu_version", "libvirt_version")


def machine_name(ini_value: str | None = None, environ: Mapping[str, str] | None = None) -> tuple[str, str]:
    """(name, where it came from): ``VIRTOVERHEAD_MACHINE``, the ini key
    ``virt_machine``, else the hostname."""
    environ = os.environ if environ is None else environ
    value = (environ.get(NAME_VARIABLE) or "").strip()
    if value:
        return value, NAME_VARIABLE
    if ini_value and ini_value.strip():
        return ini_value.strip(), f"{NAME_INI} (ini)"
    return socket.gethostname() or "unknown", "hostname"


def ci_ids(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The CI variables that are set (none outside CI)."""
    environ = os.environ if environ is None else environ
    return {k: environ[k] for k in CI_VARIABLES if environ.get(k)}


def commit(rootdir: str | None, environ: Mapping[str, str] | None = None) -> tuple[str | None, str | None]:
    """(commit, where it came from): ``git rev-parse HEAD`` in ``rootdir``,
    else a CI's commit variable, else (None, None). Never raises."""
    if rootdir:
        try:
            out = subprocess.run(["git", "-C", rootdir, "rev-parse", "HEAD"], capture_output=True, text=True,
                                 timeout=10, check=False)
        except (OSError, subprocess.SubprocessError):
            out = None
        sha = out.stdout.strip() if out is not None and out.returncode == 0 else ""
        if sha:
            return sha, "git"
    environ = os.environ if environ is None else environ
    for key in COMMIT_VARIABLES:
        if environ.get(key):
            return environ[key], key
    return None, None


def engines(metadata: Mapping[str, Any]) -> dict[str, str]:
    """``docker_version``, ``qemu_version``, ``libvirt_version`` as the
    environments reported them (an engine no environment used is absent;
    two different values are joined with ``/``)."""
    out: dict[str, list[str]] = {}
    for meta in metadata.values():
        if not isinstance(meta, dict):
            continue
        for key in ENGINE_KEYS:
            value = meta.get(key)
            if value and str(value) not in out.setdefault(key, []):
                out[key].append(str(value))
    return {k: " / ".join(v) for k, v in out.items() if v}


def cpus_used(metadata: Mapping[str, Any]) -> list[int]:
    """The CPUs the environments ran on (the union of their ``cpuset``)."""
    cpus: set[int] = set()
    for meta in metadata.values():
        cpuset = meta.get("cpuset") if isinstance(meta, dict) else None
        if isinstance(cpuset, list):
            cpus.update(c for c in cpuset if isinstance(c, int) and not isinstance(c, bool))
    return sorted(cpus)


def describe(metadata: Mapping[str, Any], host: Mapping[str, Any], *, ini_name: str | None = None,
             rootdir: str | None = None, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The ``machine`` block of a run document. ``metadata``: the
    environments' metadata (engine versions, CPU sets); ``host``: the
    document's ``host`` (:func:`..noise.host_virtualization`), whose
    ``virtual`` and ``hypervisor`` are repeated here."""
    name, source = machine_name(ini_name, environ)
    sha, sha_source = commit(rootdir, environ)
    uname = platform.uname()
    return {
        "name": name,
        "name_source": source,
        "hostname": socket.gethostname(),
        "cpu_model": cpu_model(),
        "arch": uname.machine,
        "kernel": uname.release,
        "cpu_count": os.cpu_count(),
        "virtual": bool(host.get("virtual")),
        "hypervisor": host.get("hypervisor"),
        **engines(metadata),
        "cpus_used": cpus_used(metadata),
        "ci": ci_ids(environ),
        "commit": sha,
        **({"commit_source": sha_source} if sha_source else {}),
    }
