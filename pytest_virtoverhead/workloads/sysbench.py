"""Run the real ``sysbench`` binary in whatever environment calls this, and
parse its report into numbers.

Call it from a marked test (``sysbench.run("cpu", cpu_max_prime=10000,
time=5)``) or through an environment (``vm.run(sysbench.run, "cpu",
time=5)``): the binary found on PATH in that environment runs there. The
output of sysbench 1.0.x and of its newer master (1.1) format is parsed;
both give the same keys:

=====================  ===========================================  ==========
key                    from                                         unit
=====================  ===========================================  ==========
events_per_s           "events per second:", "events/s (eps):"      events/s
total_time, seconds    "total time:", "time elapsed:"               s
events                 "total number of events:"                    count
ops, ops_per_s         memory "Total operations: N (X per second)"  count, /s
mib_transferred        memory "X MiB transferred (Y MiB/sec)"       MiB
mib_per_s              memory Y above; fileio read + written        MiB/s
reads_per_s, ...       fileio "reads/s:", "read:  IOPS=..."         ops/s
read_mib_per_s, ...    fileio "read, MiB/s:", "IOPS=.. X MiB/s"     MiB/s
latency_min_ms, ...    "Latency (ms):" min, avg, max, sum           ms
latency_p95_ms         "95th percentile:" (pNN for other NN)        ms
threads, cpu_max_prime "Number of threads:", "Prime numbers limit:" count
rate, unit             the test's headline number and its unit
=====================  ===========================================  ==========
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from typing import Any, NoReturn

from ._common import finish, scratch_dir
from .fileio import NoSpaceError, filesystem_type

SKIP_MESSAGE = "sysbench is not installed here: apt-get install sysbench"
DIRNAME = "virtoverhead-sysbench"
_COMMANDS = ("prepare", "run", "cleanup", "prewarm", "help")


class SysbenchNotFound(RuntimeError):
    """No ``sysbench`` on PATH in this environment."""


class SysbenchError(RuntimeError):
    """sysbench failed, or printed nothing this module can read."""


def binary() -> str | None:
    """Path of the ``sysbench`` executable on PATH, or None."""
    return shutil.which("sysbench")


def available() -> bool:
    """Is ``sysbench`` installed in this environment?"""
    return binary() is not None


def _missing() -> NoReturn:
    """Skip the running test, or raise where no test is running."""
    if os.environ.get("PYTEST_CURRENT_TEST") and "pytest" in sys.modules:
        import pytest

        pytest.skip(SKIP_MESSAGE)
    raise SysbenchNotFound(f"{SKIP_MESSAGE} (not found on PATH={os.environ.get('PATH', '')!r})")


# --------------------------------------------------------------------------
# parsing

_NUM = r"([0-9]+(?:\.[0-9]+)?)"
_INT = r"([0-9]+)"
#: (regex, keys): one key per group, in order.
_LINES: list[tuple[re.Pattern[str], tuple[str, ...]]] = [
    (re.compile(rf"^\s*Number of threads:\s*{_INT}"), ("threads",)),
    (re.compile(rf"^\s*Prime numbers limit:\s*{_INT}"), ("cpu_max_prime",)),
    (re.compile(rf"^\s*events per second:\s*{_NUM}"), ("events_per_s",)),
    (re.compile(rf"^\s*events/s \(eps\):\s*{_NUM}"), ("events_per_s",)),
    (re.compile(rf"^\s*total time:\s*{_NUM}s"), ("total_time",)),
    (re.compile(rf"^\s*time elapsed:\s*{_NUM}s"), ("total_time",)),
    (re.compile(rf"^\s*total number of events:\s*{_INT}"), ("events",)),
    (re.compile(rf"^\s*Total operations:\s*{_INT}\s*\(\s*{_NUM} per second\)"), ("ops", "ops_per_s")),
    (re.compile(rf"^\s*{_NUM} MiB transferred \(\s*{_NUM} MiB/sec\)"), ("mib_transferred", "mib_per_s")),
    # fileio, 1.0.x
    (re.compile(rf"^\s*reads/s:\s*{_NUM}"), ("reads_per_s",)),
    (re.compile(rf"^\s*writes/s:\s*{_NUM}"), ("writes_per_s",)),
    (re.compile(rf"^\s*fsyncs/s:\s*{_NUM}"), ("fsyncs_per_s",)),
    (re.compile(rf"^\s*read, MiB/s:\s*{_NUM}"), ("read_mib_per_s",)),
    (re.compile(rf"^\s*written, MiB/s:\s*{_NUM}"), ("written_mib_per_s",)),
    # fileio, master: "read:  IOPS=123.45 1.93 MiB/s (2.02 MB/s)"
    (re.compile(rf"^\s*read:\s*IOPS={_NUM}\s+{_NUM} MiB/s"), ("reads_per_s", "read_mib_per_s")),
    (re.compile(rf"^\s*write:\s*IOPS={_NUM}\s+{_NUM} MiB/s"), ("writes_per_s", "written_mib_per_s")),
    (re.compile(rf"^\s*fsync:\s*IOPS={_NUM}"), ("fsyncs_per_s",)),
    # Threads fairness
    (re.compile(rf"^\s*events \(avg/stddev\):\s*{_NUM}/{_NUM}"), ("fairness_events_avg", "fairness_events_stddev")),
    (re.compile(rf"^\s*execution time \(avg/stddev\):\s*{_NUM}/{_NUM}"),
     ("fairness_time_avg", "fairness_time_stddev")),
]
_LATENCY = re.compile(rf"^\s*(min|avg|max|sum|[0-9]+th percentile):\s*{_NUM}")
_FILEIO_KEYS = ("reads_per_s", "writes_per_s", "read_mib_per_s", "written_mib_per_s")


def _number(text: str) -> int | float:
    return float(text) if "." in text else int(text)


def parse(text: str) -> dict[str, Any]:
    """Numbers from a sysbench report (1.0.x or master format), keyed as in
    the module's table, plus the headline ``rate``, its ``unit`` and
    ``seconds`` (the total time). Unknown lines are ignored; an unreadable
    report gives ``{}``."""
    out: dict[str, Any] = {}
    section = ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.endswith(":") and not stripped[:-1].strip().replace(" ", "").isdigit():
            section = stripped[:-1]
        if section.startswith("Latency"):
            m = _LATENCY.match(line)
            if m:
                name = m.group(1)
                if name.endswith("percentile"):
                    name = "p" + name.split("th")[0]
                out[f"latency_{name}_ms"] = float(m.group(2))
                continue
        for pattern, keys in _LINES:
            m = pattern.match(line)
            if m:
                for key, value in zip(keys, m.groups()):
                    out[key] = _number(value)
                break
    if "total_time" in out:
        out["seconds"] = out["total_time"]
    if "mib_transferred" in out and "mib_per_s" in out:
        out["rate"], out["unit"] = out["mib_per_s"], "MiB/s"
    elif any(k in out for k in _FILEIO_KEYS):
        out["mib_per_s"] = out.get("read_mib_per_s", 0.0) + out.get("written_mib_per_s", 0.0)
        out["rate"], out["unit"] = out["mib_per_s"], "MiB/s"
    elif "events_per_s" in out:
        out["rate"], out["unit"] = out["events_per_s"], "events/s"
    elif out.get("events") and out.get("total_time"):
        out["events_per_s"] = out["events"] / out["total_time"]
        out["rate"], out["unit"] = out["events_per_s"], "events/s"
    return out


# --------------------------------------------------------------------------
# running


def _option(key: str, value: Any) -> str:
    if value is True:
        value = "on"
    elif value is False:
        value = "off"
    return f"--{key.replace('_', '-')}={value}"


def command(test: str, *args: str, threads: int = 1, time: float | None = None, events: int | None = None,
            **options: Any) -> list[str]:
    """The argument list (without the final command word) for ``test``:
    ``sysbench TEST --threads=N [--time=T] [--events=E] --opt-name=value ... ARGS``.
    Keyword options are spelled with underscores (``cpu_max_prime=10000``);
    True/False become on/off."""
    for arg in args:
        if arg in _COMMANDS:
            raise ValueError(f"do not pass the command {arg!r}: run() adds prepare/run/cleanup itself")
    cmd = [binary() or "sysbench", test, f"--threads={threads}"]
    if time is not None:
        cmd.append(f"--time={time:g}" if isinstance(time, float) else f"--time={time}")
    if events is not None:
        cmd.append(f"--events={events}")
    cmd += [_option(k, v) for k, v in options.items()]
    cmd += [str(a) for a in args]
    return cmd


def _call(cmd: list[str], cwd: str | None, timeout: float | None, stage: str) -> str:
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise SysbenchError(f"{' '.join(cmd)} did not finish within {timeout:g} s") from None
    if proc.returncode != 0:
        text = (proc.stdout + proc.stderr).strip()
        if cwd and ("No space left" in text or "ENOSPC" in text):
            raise NoSpaceError(28, f"sysbench {stage} ran out of space in the scratch directory {cwd} "
                                   f"({filesystem_type(cwd)}): use a smaller --file-total-size or a larger "
                                   f"scratch filesystem. Its output ended: {text[-300:]}", cwd)
        raise SysbenchError(f"`{' '.join(cmd)}` failed (exit status {proc.returncode}):\n{text[-2000:]}")
    return proc.stdout


def run(test: str, *args: str, threads: int = 1, time: float | None = None, events: int | None = None,
        directory: str | None = None, timeout: float | None = None, **options: Any) -> dict[str, Any]:
    """Run ``sysbench TEST ... run`` here and return :func:`parse` of its
    report, plus ``test``, ``command`` (str), ``version`` (str) and
    ``output`` (the report).

    ``args`` are extra raw arguments (``"--cpu-max-prime=20000"``);
    ``options`` are the same as keywords (``cpu_max_prime=20000``). With
    neither ``time`` nor ``events`` sysbench runs for its default 10 s.
    For ``fileio``, ``prepare`` runs first and ``cleanup`` after (even on
    error), in ``directory`` (default ``<scratch>/virtoverhead-sysbench``);
    give ``file_test_mode=...`` and keep ``file_total_size`` small enough
    for the scratch filesystem (sysbench's default is 2G).

    Records the headline work: events ("events", rate in events/s) for cpu
    and most tests, MiB transferred ("MiB", rate in MiB/s) for memory, MiB
    read + written ("MiB", MiB/s) for fileio. ``rate`` and ``unit`` in the
    result are sysbench's own headline number (events/s or MiB/s). Where sysbench is missing, skips the running test with
    ``"sysbench is not installed here: apt-get install sysbench"``, or,
    outside a test, raises :class:`SysbenchNotFound`.
    """
    if binary() is None:
        _missing()
    cmd = command(test, *args, threads=threads, time=time, events=events, **options)
    cwd = None
    if test == "fileio":
        cwd = directory or os.path.join(scratch_dir(), DIRNAME)
        os.makedirs(cwd, exist_ok=True)
        _call(cmd + ["prepare"], cwd, timeout, "fileio prepare")
        try:
            text = _call(cmd + ["run"], cwd, timeout, "fileio run")
        finally:
            try:
                _call(cmd + ["cleanup"], cwd, timeout, "fileio cleanup")
            finally:
                if directory is None:
                    try:
                        os.rmdir(cwd)
                    except OSError:
                        pass
    else:
        text = _call(cmd + ["run"], directory, timeout, test)
    out = parse(text)
    if "rate" not in out:
        raise SysbenchError(f"cannot read the report of `{' '.join(cmd)} run`:\n{text[-2000:]}")
    seconds = out.get("total_time") or 0.0
    if "mib_transferred" in out:
        amount, unit = out["mib_transferred"], "MiB"
    elif out["unit"] == "MiB/s":
        amount, unit = out["mib_per_s"] * seconds, "MiB"
    else:
        amount, unit = out.get("events") or out["rate"] * seconds, "events"
    if amount > 0 and seconds > 0:
        finish(amount, unit, seconds, test=test)
    first = text.lstrip().splitlines()[0] if text.strip() else ""
    out.update(test=test, command=" ".join(cmd + ["run"]), version=first, output=text)
    return out
