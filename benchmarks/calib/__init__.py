"""Verdict calibration: the figures issue 11's "Done when" asks for, in one
command.

    .venv/bin/python benchmarks/calibration.py [--part NAME ...] [--sessions N]
        [--quick] [--json PATH] [--out-dir DIR] [--write-results]
        [--merge SUMMARY.json] [--resummarize SUMMARY.json] [--note TEXT]

Parts (all by default; ``--part`` is repeatable):

``aa-call``
    independent A/A sessions (default 20) of a call-based, pure-Python,
    CPU-bound marked test (~15 ms per call): ``--virt-envs=baremetal,
    control=baremetal``, claim ``control ~= baremetal +- 2%``, a different
    ``--virt-seed`` each. Per session: ratio, CI, relative half-width,
    whether the CI covers 1.0, verdict, disturbed rounds. Target: the CI
    covers 1.0 in at least 18 of 20.
``aa-bench``
    the same with a test that times a sub-millisecond function through
    pytest-benchmark's ``benchmark`` fixture.
``aa-container``
    ``--virt-envs=baremetal,container,c2=container --virt-baseline=container``,
    claim ``c2 ~= container +- 2%``, the call-based test (default 20).
``aa-xdist``
    the aa-call test as two items under ``-n 2 --virt-cpus=<the last two
    CPUs>`` (one pytest-xdist worker per CPU, measuring side by side):
    every interval of every session counts (two per session).
``floor``
    A/A half-width at ``--virt-rounds=20`` (default 5 sessions per case):
    control vs baremetal, and container vs baremetal with c2 vs container
    (one session gives both). Target: median half-width at most 2%.
``scale``
    a suite of 5 sub-microsecond functions through the ``benchmark``
    fixture, ``benchmark.pedantic(..., rounds=100000)`` (10^5 samples per
    round and environment), ``--virt-envs=baremetal,container``: every
    claim must get a verdict (not an error or a skip) and the host pytest
    process's peak RSS must stay under 500 MB. The peak RSS is VmHWM of
    /proc/self/status read in the pytest process itself when
    ``pytest.main`` returns (a two-line wrapper runs pytest in-process);
    ``/usr/bin/time -v``'s maximum resident set size (the largest of the
    process tree, workers included) is recorded beside it where present.
``compare``
    several identical saved runs (default 6; same code, different seeds)
    of a two-test suite (call-based and ``benchmark`` fixture) over
    ``baremetal,control=baremetal,container``, then ``pytest-virtoverhead
    compare A.json B.json`` over every unordered pair (A the earlier run,
    B the later one: 15 pairs for 6 runs), through the CLI with
    ``--json``. Counts the rows the tool flags better or worse (target: at
    most 5%). Reads the command's JSON leniently and falls back on its text
    and exit code, since its format is still settling.

Everything runs in generated test files under a fresh directory (``--out-dir``,
default /tmp/virt-calibration-<date>), which keeps every session's
``--virt-json`` file for reproduction (each session's seed and command are in
the summary JSON). Sessions use the plugin's defaults (rounds, processes,
calls, CPU pinning) except where a part says otherwise; ``PYTEST_ADDOPTS`` is
not passed on (``--extra`` appends arguments to every session instead).

Output: a table on stdout, the summary JSON (``--json``, default
``<out-dir>/calibration.json``) and, with ``--write-results``, the section
"Verdict calibration" of benchmarks/RESULTS.md (created or replaced between
its markers; the rest of the file is left alone). The machine is named:
CPU model, cores, kernel, ``uptime`` before and after, the steal share of
CPU time from /proc/stat over the run, and whether the host is itself a
virtual machine.

Re-measuring one part: ``--part floor --merge EARLIER/calibration.json``
takes the other parts from an earlier run (each part keeps its own times,
load and steal). ``--resummarize SUMMARY.json`` runs nothing and recomputes
the figures from a finished run's session files (after a change of the
plugin's JSON); ``--note`` adds a sentence to the section (what else ran).

Quantiles are linear interpolation between order statistics (p10, median,
p90). The relative half-width of an interval is (hi - lo) / 2 / ratio, as
``samplestats.relative_half_width``.
"""
