"""The ``baremetal`` kind: the worker as a plain subprocess of the host."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from typing import Any

from .. import footprint
from ..guest.children import signal_name
from ..guest.proctree import kill_tree
from ..wire.envvars import SCRATCH_ENV, WATCH_PARENT_VAR
from .base import Backend
from .channel import PipeTransport, Transport
from .errors import EnvUnavailable


class BaremetalBackend(Backend):
    kind = "baremetal"
    option_help = {
        "python": "interpreter that runs the worker (default: the host's own)",
        "nice": "nice increment for the worker process (default 0)",
        "scratch": "directory for file I/O workloads (default: a new temporary directory)",
    }

    def __init__(self, spec, ctx):
        super().__init__(spec, ctx)
        self.proc: subprocess.Popen | None = None
        self._stderr = None
        self._scratch: str | None = None
        self._exitcode: int | None = None

    def direct_path(self) -> str | None:
        return self.direct_host_dir

    def start(self) -> Transport:
        python = self.spec.options.get("python") or self.ctx.python
        self._exitcode = None
        if self._stderr is not None:
            self._stderr.close()
        self._stderr = tempfile.TemporaryFile(prefix=f"virt-{self.spec.name}-")
        nice = int(self.spec.options.get("nice", "0"))
        scratch = self.spec.options.get("scratch")
        if scratch:
            os.makedirs(scratch, exist_ok=True)
        else:
            # The owner's pid in the name: the next session's reap() removes
            # what a killed session left.
            scratch = self._scratch = tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-{self.spec.name}-")
        try:
            self.proc = subprocess.Popen(
                self.worker_command(python),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                cwd=self.ctx.rootdir,
                # Not pytest-xdist's worker variables: a pytest session that
                # sees them thinks it is an xdist worker (pytest-benchmark
                # then turns its fixture off), and this one is not.
                env={**{k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST_")},
                     "PYTHONUNBUFFERED": "1", SCRATCH_ENV: scratch,
                     WATCH_PARENT_VAR: str(os.getpid())},
                start_new_session=True,  # Ctrl-C reaches pytest, not the worker
                preexec_fn=(lambda: os.nice(nice)) if nice else None,
            )
        except OSError as exc:
            raise EnvUnavailable(f"cannot start the worker with {python}: {exc}") from None
        if self.ctx.cpus:
            try:
                os.sched_setaffinity(self.proc.pid, self.ctx.cpus)
            except OSError as exc:
                self.stop()
                raise EnvUnavailable(f"cannot pin the worker to CPUs {list(self.ctx.cpus)}: {exc}") from None
        return PipeTransport(self.proc.stdout, self.proc.stdin)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            try:
                proc.stdin.close()
            except OSError:
                pass
            try:
                proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                kill_tree(proc.pid)
                proc.wait()
        if proc is not None:
            self._exitcode = proc.returncode
        if self._scratch:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None

    def kill(self) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            # The worker, its worker processes and whatever they started
            # (a killed worker cannot end them itself).
            kill_tree(proc.pid)
        self.stop()

    @classmethod
    def reap(cls, ctx) -> list[str]:
        """Remove the scratch directories of sessions that no longer run
        (``virt-scratch-<pid>-<env>-*`` in the temporary directory)."""
        return reap_scratch(tempfile.gettempdir(), ctx.owner_pid)

    def metadata(self) -> dict[str, Any]:
        return {"python_worker": self.spec.options.get("python") or self.ctx.python,
                "scratch": self.spec.options.get("scratch") or "tmpdir"}

    def footprint_sample(self) -> dict[str, Any]:
        """The worker and its worker processes: summed RSS and high-water
        marks from /proc/<pid>/status, CPU from /proc/<pid>/stat."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return {}
        pid = proc.pid
        rss, hwm, n = footprint.tree_memory(pid)
        where = f"worker pid {pid} and its live descendants ({n} processes)"
        return {
            footprint.MEMORY: footprint.Reading(rss, "B", f"/proc/<pid>/status VmRSS, summed over the {where}"),
            footprint.MEMORY_PEAK: footprint.Reading(hwm, "B", f"/proc/<pid>/status VmHWM, summed over the {where}"),
            footprint.CPU: footprint.Reading(footprint.tree_cpu_seconds(pid), "s",
                                             "/proc/<pid>/stat utime+stime of the worker, its waited-for children "
                                             "and live descendants"),
        }

    def footprint_storage(self) -> dict[str, Any]:
        """None of its own: it runs the host's files in place (the scratch
        directory's size is measured, usually empty)."""
        scratch = self.spec.options.get("scratch") or self._scratch
        alloc = footprint.path_bytes(scratch)[0] if scratch else 0
        return {"scratch": footprint.Reading(alloc, "B", f"stat of the files under {scratch} (allocated blocks); "
                                             "the interpreter and project are the host's own, not copied")}

    def diagnostics(self) -> str:
        parts = []
        code = self.proc.poll() if self.proc is not None else None
        code = self._exitcode if code is None else code
        if code is not None:
            parts.append(f"worker exit code: {code}" + (f" (killed by {signal_name(-code)})" if code < 0 else ""))
        if self._stderr is not None:
            try:
                self._stderr.seek(0, os.SEEK_END)
                size = self._stderr.tell()
                self._stderr.seek(max(0, size - 4000))
                tail = self._stderr.read().decode("utf-8", "replace")
                if tail.strip():
                    parts.append("worker stderr (tail):\n" + tail)
            except (OSError, ValueError):
                pass
        return "\n".join(parts)


SCRATCH_PREFIX = "virt-scratch-"
_SCRATCH_RE = re.compile(re.escape(SCRATCH_PREFIX) + r"(\d+)-[A-Za-z_][A-Za-z0-9_]*-[^/]+\Z")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    return True


def reap_scratch(tmpdir: str, own_pid: int) -> list[str]:
    """Remove ``virt-scratch-<pid>-...`` directories under ``tmpdir`` whose
    pid no longer runs; return their paths. Best effort: a directory of
    another user that cannot be removed is left alone."""
    removed: list[str] = []
    try:
        names = os.listdir(tmpdir)
    except OSError:
        return removed
    for name in names:
        m = _SCRATCH_RE.match(name)
        if not m or int(m.group(1)) == own_pid or _pid_alive(int(m.group(1))):
            continue
        path = os.path.join(tmpdir, name)
        if not os.path.isdir(path) or os.path.islink(path):
            continue
        shutil.rmtree(path, ignore_errors=True)
        if not os.path.exists(path):
            removed.append(f"scratch directory {path}")
    return removed
