"""The workload library: hand-computed counts, result keys, recorded work,
parsers on hand-written sysbench reports, clear errors. No timing asserts."""

from __future__ import annotations

import errno
import json
import os
import stat
import subprocess
import sys
import textwrap

import pytest

from pytest_virtoverhead.guest.work import take_work
from pytest_virtoverhead.workloads import cpu, fileio, memory, spawn, sysbench, syscalls

MiB = 1024 * 1024
KiB = 1024


@pytest.fixture(autouse=True)
def _clean_work():
    take_work()
    yield
    take_work()


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    """The scratch directory, as an environment's worker would see it."""
    monkeypatch.setenv("VIRTOVERHEAD_SCRATCH", str(tmp_path))
    return tmp_path


def check_result(result, unit):
    assert result["unit"] == unit
    assert result["seconds"] > 0
    assert result["rate"] == pytest.approx(result["amount"] / result["seconds"])
    json.dumps(result)  # crosses the environment boundary as JSON


# --------------------------------------------------------------------------
# cpu


@pytest.mark.parametrize("max_prime, expected", [
    (3, 0),        # the range 3..2 is empty
    (4, 1),        # 3
    (10, 3),       # 3 5 7
    (12, 4),       # 3 5 7 11
    (30, 9),       # 3 5 7 11 13 17 19 23 29
    (100, 24),     # 25 primes below 100, minus 2
    (10000, 1228),  # pi(9999) = 1229, minus 2
])
def test_prime_count_is_sysbench_count(max_prime, expected):
    assert cpu.prime_count(max_prime) == expected
    assert cpu.prime_count_numpy(max_prime) == expected


def test_prime_count_matches_pi_up_to_100():
    # pi(100) = 25 counts 2, which sysbench's loop (from 3) leaves out.
    assert cpu.prime_count(101) + 1 == 25


def test_numpy_variant_agrees_everywhere_small():
    for n in range(3, 400):
        assert cpu.prime_count_numpy(n) == cpu.prime_count(n), n


def test_primes_result_and_recorded_work():
    result = cpu.primes(max_prime=100, events=3)
    check_result(result, "events/s")
    assert result["events"] == 3 and result["primes"] == 24 and result["max_prime"] == 100
    assert result["events_per_s"] == result["rate"]
    work = take_work()
    assert work["amount"] == 3 and work["unit"] == "events"


def test_primes_numpy_result_and_recorded_work():
    pytest.importorskip("numpy")
    result = cpu.primes_numpy(max_prime=1000, events=2)
    check_result(result, "events/s")
    assert result["primes"] == 167  # pi(999) = 168, minus 2
    assert take_work()["amount"] == 2


@pytest.mark.parametrize("kwargs", [{"max_prime": 2}, {"events": 0}, {"events": 1.5}])
def test_primes_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        cpu.primes(**kwargs)


# --------------------------------------------------------------------------
# memory


@pytest.mark.parametrize("mode", ["seq", "rnd"])
@pytest.mark.parametrize("oper", ["write", "read"])
def test_memory_blocks(mode, oper):
    result = memory.blocks(block_size=KiB, total_size=64 * KiB, mode=mode, oper=oper, buffer_size=16 * KiB)
    check_result(result, "MiB/s")
    assert result["blocks"] == 64
    assert result["mib"] == 64 / 1024
    assert (result["mode"], result["oper"], result["buffer_size"]) == (mode, oper, 16 * KiB)
    work = take_work()
    assert work["amount"] == 64 / 1024 and work["unit"] == "MiB"


def test_memory_blocks_rounds_down_to_whole_blocks():
    result = memory.blocks(block_size=4096, total_size=10000, buffer_size=8192)
    assert result["blocks"] == 2 and result["mib"] == 8192 / MiB


@pytest.mark.parametrize("kwargs, match", [
    ({"mode": "stride"}, "mode must be"),
    ({"oper": "none"}, "oper must be"),
    ({"block_size": 4096, "buffer_size": 1024}, "at least block_size"),
    ({"block_size": 4096, "total_size": 100}, "smaller than one block"),
    ({"block_size": 0}, "block_size must be"),
])
def test_memory_blocks_rejects(kwargs, match):
    with pytest.raises(ValueError, match=match):
        memory.blocks(**kwargs)


# --------------------------------------------------------------------------
# fileio

FILEIO_KEYS = {"seconds", "rate", "unit", "reads", "writes", "fsyncs", "reads_per_s", "writes_per_s",
               "fsyncs_per_s", "read_mib_per_s", "written_mib_per_s", "mib_per_s", "mode", "block_size",
               "direct", "directory", "fs_type"}


def test_fileio_prepare_creates_files_and_run_reads_one_pass(scratch):
    prep = fileio.prepare(total_size=64 * KiB, files=2)
    directory = prep["directory"]
    assert directory == str(scratch / "virtoverhead-fileio")
    assert sorted(os.listdir(directory)) == ["test_file.0", "test_file.1", "virtoverhead-fileio.json"]
    assert os.path.getsize(os.path.join(directory, "test_file.1")) == 32 * KiB
    assert prep["file_size"] == 32 * KiB and prep["total_size"] == 64 * KiB

    result = fileio.run("seqrd")
    assert FILEIO_KEYS <= set(result)
    check_result(result, "MiB/s")
    # one pass: 64 KiB in 16 KiB blocks
    assert (result["reads"], result["writes"], result["fsyncs"]) == (4, 0, 0)
    assert result["read_mib_per_s"] == pytest.approx(result["mib_per_s"])
    assert result["written_mib_per_s"] == 0
    work = take_work()
    assert work["unit"] == "MiB" and work["amount"] == 4 * 16 * KiB / MiB
    assert work["reads"] == 4

    assert fileio.cleanup()["removed"] == 3
    assert not os.path.exists(directory)


def test_fileio_fsync_counting(scratch):
    fileio.prepare(total_size=64 * KiB, files=1)
    # 10 writes, fsync after the 4th and 8th, then the end fsync of the 2 pending.
    result = fileio.run("rndwr", ops=10, fsync_freq=4, seed=1)
    assert (result["reads"], result["writes"], result["fsyncs"]) == (0, 10, 3)
    assert result["fsyncs_per_s"] == pytest.approx(3 / result["seconds"])
    result = fileio.run("rndwr", ops=10, fsync_freq=0, fsync_end=False, seed=1)
    assert result["fsyncs"] == 0
    # seqrewr over 2 files: one pass is 4 writes, no periodic fsync, one end fsync per file
    fileio.prepare(total_size=64 * KiB, files=2)
    result = fileio.run("seqrewr")
    assert (result["writes"], result["fsyncs"], result["written_mib_per_s"] * result["seconds"]) == \
        (4, 2, pytest.approx(4 * 16 * KiB / MiB))
    fileio.cleanup()


def test_fileio_rndrw_mixes_and_is_reproducible(scratch):
    fileio.prepare(total_size=256 * KiB, files=4)
    a = fileio.run("rndrw", ops=200, block_size=4096, seed=7)
    b = fileio.run("rndrw", ops=200, block_size=4096, seed=7)
    assert a["reads"] + a["writes"] == 200
    assert 0 < a["writes"] < a["reads"]  # rw_ratio 1.5: about 120 reads, 80 writes
    assert (a["reads"], a["writes"]) == (b["reads"], b["writes"])
    only_reads = fileio.run("rndrw", ops=50, rw_ratio=float("inf"), seed=1)
    assert only_reads["writes"] == 0
    fileio.cleanup()


def test_fileio_seqwr_leaves_files_whole(scratch):
    prep = fileio.prepare(total_size=64 * KiB, files=2)
    result = fileio.run("seqwr", ops=1)  # truncates both, rewrites one block
    assert result["writes"] == 1
    for name in ("test_file.0", "test_file.1"):
        assert os.path.getsize(os.path.join(prep["directory"], name)) == 32 * KiB
    fileio.cleanup()


def test_fileio_duration_bounded_run(scratch):
    fileio.prepare(total_size=64 * KiB, files=1)
    result = fileio.run("rndrd", duration=0.02, block_size=4096)
    assert result["reads"] > 0 and result["writes"] == 0
    fileio.cleanup()


def test_fileio_benchmark_cleans_up_even_on_error(scratch):
    result = fileio.benchmark("rndrw", total_size=128 * KiB, files=2, ops=20, seed=3)
    assert FILEIO_KEYS <= set(result) and "prepare_seconds" in result
    assert result["reads"] + result["writes"] == 20
    assert take_work()["unit"] == "MiB"
    assert os.listdir(scratch) == []
    with pytest.raises(ValueError, match="unknown fileio mode 'rnd'"):
        fileio.benchmark("rnd", total_size=64 * KiB)
    assert os.listdir(scratch) == []


def test_fileio_run_without_prepare(scratch):
    with pytest.raises(FileNotFoundError, match=r"call fileio.prepare\(\) first"):
        fileio.run("seqrd")


def test_fileio_direct_needs_512_multiples(scratch):
    fileio.prepare(total_size=64 * KiB, files=1)
    with pytest.raises(ValueError, match="multiple of 512"):
        fileio.run("seqrd", direct=True, block_size=1000)
    fileio.cleanup()


def _odirect_works(directory) -> bool:
    probe = os.path.join(directory, ".odirect-probe")
    try:
        fd = os.open(probe, os.O_CREAT | os.O_WRONLY | os.O_DIRECT, 0o600)
    except OSError:
        return False
    else:
        os.close(fd)
        return True
    finally:
        try:
            os.unlink(probe)
        except OSError:
            pass


@pytest.mark.skipif(not hasattr(os, "O_DIRECT"), reason="no O_DIRECT on this platform")
def test_fileio_direct_where_supported(scratch):
    if not _odirect_works(scratch):
        pytest.skip(f"{scratch} refuses O_DIRECT")
    result = fileio.benchmark("rndrw", total_size=64 * KiB, files=1, ops=8, direct=True, block_size=4096)
    assert result["direct"] is True and result["reads"] + result["writes"] == 8


@pytest.fixture
def mount(tmp_path):
    """Mount a small filesystem of a type (root only), unmounted after."""
    mounted = []

    def do(fstype, options=""):
        if os.geteuid() != 0:
            pytest.skip("mounting a test filesystem needs root")
        target = tmp_path / f"mnt-{fstype}-{len(mounted)}"
        target.mkdir()
        cmd = ["mount", "-t", fstype] + (["-o", options] if options else []) + [fstype, str(target)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.skip(f"cannot mount {fstype} here: {proc.stderr.strip()}")
        mounted.append(target)
        return target

    yield do
    for target in reversed(mounted):
        subprocess.run(["umount", str(target)], check=False)


@pytest.mark.skipif(not hasattr(os, "O_DIRECT"), reason="no O_DIRECT on this platform")
def test_fileio_direct_refused_is_a_clear_error(mount):
    # ramfs refuses O_DIRECT on every kernel (tmpfs did before Linux 6.6).
    directory = mount("ramfs")
    assert not _odirect_works(directory)
    fileio.prepare(total_size=64 * KiB, files=1, directory=str(directory))
    with pytest.raises(fileio.DirectIOUnsupported) as info:
        fileio.run("seqrd", direct=True, directory=str(directory))
    assert isinstance(info.value, ValueError)
    message = str(info.value)
    assert "refuses O_DIRECT" in message and str(directory) in message and "ramfs" in message
    assert "direct=False" in message
    fileio.cleanup(str(directory))


def test_fileio_full_disk_is_a_clear_error(mount):
    directory = mount("tmpfs", "size=64k")
    with pytest.raises(fileio.NoSpaceError) as info:
        fileio.prepare(total_size=1 * MiB, files=2, directory=str(directory))
    assert info.value.errno == errno.ENOSPC
    message = str(info.value)
    assert "no space left" in message and str(directory) in message and "VIRTOVERHEAD_SCRATCH" in message
    assert os.listdir(directory) == []  # partial files removed


def _fill_up(directory) -> None:
    fd = os.open(os.path.join(directory, "filler"), os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"x" * 4096)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)


def test_fileio_full_disk_during_run(mount):
    directory = mount("tmpfs", "size=64k")
    fileio.prepare(total_size=32 * KiB, files=1, directory=str(directory))
    path = directory / "test_file.0"
    os.truncate(path, 0)
    os.truncate(path, 32 * KiB)  # same size, now a hole: writes must allocate
    _fill_up(directory)
    with pytest.raises(fileio.NoSpaceError) as info:
        fileio.run("seqrewr", directory=str(directory))
    assert info.value.errno == errno.ENOSPC and str(directory) in str(info.value)


def test_filesystem_type():
    assert fileio.filesystem_type("/proc/self") == "proc"
    assert fileio.filesystem_type("/") not in ("", "unknown")


# --------------------------------------------------------------------------
# syscalls and spawn


def test_getppid():
    result = syscalls.getppid(n=1000)
    check_result(result, "ops/s")
    assert result["ops"] == 1000 and result["ns_per_op"] == pytest.approx(result["seconds"] / 1000 * 1e9)
    work = take_work()
    assert work["amount"] == 1000 and work["unit"] == "ops"


def test_fork_exec():
    result = spawn.fork_exec(n=3)
    check_result(result, "spawns/s")
    assert result["spawns"] == 3 and os.path.basename(result["program"]) == "true"
    work = take_work()
    assert work["amount"] == 3 and work["unit"] == "spawns"


def test_fork_exec_failures():
    with pytest.raises(RuntimeError, match="exited with status 1"):
        spawn.fork_exec(n=1, program="false")
    with pytest.raises(FileNotFoundError, match="no-such-program"):
        spawn.fork_exec(n=1, program="no-such-program")


# --------------------------------------------------------------------------
# sysbench: parsers on hand-written reports

CPU_1_0 = """\
sysbench 1.0.20 (using system LuaJIT 2.1.0-beta3)

Running the test with following options:
Number of threads: 1
Initializing random number generator from current time


Prime numbers limit: 10000

Initializing worker threads...

Threads started!

CPU speed:
    events per second:  4506.12

General statistics:
    total time:                          5.0002s
    total number of events:              22532

Latency (ms):
         min:                                    0.21
         avg:                                    0.22
         max:                                    1.57
         95th percentile:                        0.23
         sum:                                 4996.40

Threads fairness:
    events (avg/stddev):           22532.0000/0.00
    execution time (avg/stddev):   4.9964/0.00
"""

MEMORY_1_0 = """\
sysbench 1.0.20 (using system LuaJIT 2.1.0-beta3)

Running the test with following options:
Number of threads: 2
Initializing random number generator from current time


Running memory speed test with the following options:
  block size: 1KiB
  total size: 102400MiB
  operation: write
  scope: global

Initializing worker threads...

Threads started!

Total operations: 35694080 (7138102.55 per second)

34857.50 MiB transferred (6970.80 MiB/sec)


General statistics:
    total time:                          5.0004s
    total number of events:              35694080

Latency (ms):
         min:                                    0.00
         avg:                                    0.00
         max:                                    2.03
         95th percentile:                        0.00
         sum:                                 3712.55

Threads fairness:
    events (avg/stddev):           17847040.0000/1021.50
    execution time (avg/stddev):   1.8563/0.01
"""

FILEIO_1_0 = """\
sysbench 1.0.20 (using system LuaJIT 2.1.0-beta3)

Running the test with following options:
Number of threads: 1
Initializing random number generator from current time


Extra file open flags: (none)
128 files, 16MiB each
2GiB total file size
Block size 16KiB
Number of IO requests: 0
Read/Write ratio for combined random IO test: 1.50
Periodic FSYNC enabled, calling fsync() each 100 requests.
Calling fsync() at the end of test, Enabled.
Using synchronous I/O mode
Doing random r/w test
Initializing worker threads...

Threads started!


File operations:
    reads/s:                      1500.25
    writes/s:                     1000.50
    fsyncs/s:                     3200.00

Throughput:
    read, MiB/s:                  23.44
    written, MiB/s:               15.63

General statistics:
    total time:                          10.0100s
    total number of events:              57000

Latency (ms):
         min:                                    0.00
         avg:                                    0.17
         max:                                   40.12
         95th percentile:                        0.65
         sum:                                 9690.00

Threads fairness:
    events (avg/stddev):           57000.0000/0.00
    execution time (avg/stddev):   9.6900/0.00
"""

CPU_MASTER = """\
sysbench 1.1.0-ead2689 (using bundled LuaJIT 2.1.0-beta3)

Running the test with following options:
Number of threads: 4
Initializing random number generator from current time


Prime numbers limit: 20000

Initializing worker threads...

Threads started!

CPU speed:
    events per second:  1234.50

Throughput:
    events/s (eps):                      1234.5000
    time elapsed:                        10.0004s
    total number of events:              12346

Latency (ms):
         min:                                    3.10
         avg:                                    3.24
         max:                                   12.80
         95th percentile:                        3.36
         sum:                                39990.20

Threads fairness:
    events (avg/stddev):           3086.5000/4.50
    execution time (avg/stddev):   9.9976/0.00
"""

MEMORY_MASTER = """\
sysbench 1.1.0-ead2689 (using bundled LuaJIT 2.1.0-beta3)

Running the test with following options:
Number of threads: 1
Initializing random number generator from current time


Running memory speed test with the following options:
  block size: 1KiB
  total size: 102400MiB
  operation: read
  scope: global

Initializing worker threads...

Threads started!

Total operations: 10000000 (2000000.00 per second)

9765.62 MiB transferred (1953.12 MiB/sec)


Throughput:
    events/s (eps):                      2000000.0000
    time elapsed:                        5.0000s
    total number of events:              10000000

Latency (ms):
         min:                                    0.00
         avg:                                    0.00
         max:                                    0.25
         95th percentile:                        0.00
         sum:                                 2800.00

Threads fairness:
    events (avg/stddev):           10000000.0000/0.00
    execution time (avg/stddev):   2.8000/0.00
"""

FILEIO_MASTER = """\
sysbench 1.1.0-ead2689 (using bundled LuaJIT 2.1.0-beta3)

Running the test with following options:
Number of threads: 1
Initializing random number generator from current time


Extra file open flags: (none)
4 files, 8MiB each
32MiB total file size
Block size 16KiB
Number of IO requests: 150
Read/Write ratio for combined random IO test: 1.50
Periodic FSYNC enabled, calling fsync() each 100 requests.
Calling fsync() at the end of test, Enabled.
Using synchronous I/O mode
Doing random r/w test
Initializing worker threads...

Threads started!


Throughput:
         read:  IOPS=4200.50 65.63 MiB/s (68.82 MB/s)
         write: IOPS=2800.25 43.75 MiB/s (45.88 MB/s)
         fsync: IOPS=224.00

Latency (ms):
         min:                                  0.00
         avg:                                  0.13
         max:                                  5.00
         95th percentile:                      0.40
         sum:                                 20.54

Threads fairness:
    events (avg/stddev):           158.0000/0.00
    execution time (avg/stddev):   0.0205/0.00
"""

SEQRD_MASTER_NO_WRITES = """\
Throughput:
         read:  IOPS=100.00 1.56 MiB/s (1.64 MB/s)
         write: IOPS=0.00 0.00 MiB/s (0.00 MB/s)
         fsync: IOPS=0.00
"""


def test_parse_cpu_1_0():
    out = sysbench.parse(CPU_1_0)
    assert out["events_per_s"] == 4506.12 and out["rate"] == 4506.12 and out["unit"] == "events/s"
    assert out["total_time"] == out["seconds"] == 5.0002
    assert out["events"] == 22532 and isinstance(out["events"], int)
    assert (out["threads"], out["cpu_max_prime"]) == (1, 10000)
    assert (out["latency_min_ms"], out["latency_avg_ms"], out["latency_max_ms"]) == (0.21, 0.22, 1.57)
    assert (out["latency_p95_ms"], out["latency_sum_ms"]) == (0.23, 4996.40)
    assert (out["fairness_events_avg"], out["fairness_time_avg"]) == (22532.0, 4.9964)


def test_parse_memory_1_0():
    out = sysbench.parse(MEMORY_1_0)
    assert out["mib_per_s"] == out["rate"] == 6970.80 and out["unit"] == "MiB/s"
    assert out["mib_transferred"] == 34857.50
    assert (out["ops"], out["ops_per_s"]) == (35694080, 7138102.55)
    assert out["threads"] == 2 and out["seconds"] == 5.0004 and out["events"] == 35694080
    assert out["fairness_events_stddev"] == 1021.50 and out["latency_max_ms"] == 2.03


def test_parse_fileio_1_0():
    out = sysbench.parse(FILEIO_1_0)
    assert (out["reads_per_s"], out["writes_per_s"], out["fsyncs_per_s"]) == (1500.25, 1000.50, 3200.00)
    assert (out["read_mib_per_s"], out["written_mib_per_s"]) == (23.44, 15.63)
    assert out["mib_per_s"] == out["rate"] == pytest.approx(39.07) and out["unit"] == "MiB/s"
    assert out["seconds"] == 10.01 and out["events"] == 57000 and out["latency_p95_ms"] == 0.65


def test_parse_cpu_master():
    out = sysbench.parse(CPU_MASTER)
    assert out["events_per_s"] == out["rate"] == 1234.5 and out["unit"] == "events/s"
    assert out["total_time"] == 10.0004 and out["events"] == 12346
    assert (out["threads"], out["cpu_max_prime"]) == (4, 20000)
    assert out["latency_p95_ms"] == 3.36 and out["latency_sum_ms"] == 39990.20
    assert out["fairness_events_stddev"] == 4.5


def test_parse_memory_master():
    out = sysbench.parse(MEMORY_MASTER)
    assert out["rate"] == out["mib_per_s"] == 1953.12 and out["unit"] == "MiB/s"
    assert out["mib_transferred"] == 9765.62 and out["events_per_s"] == 2000000.0
    assert out["seconds"] == 5.0 and out["ops"] == 10000000


def test_parse_fileio_master():
    out = sysbench.parse(FILEIO_MASTER)
    assert (out["reads_per_s"], out["read_mib_per_s"]) == (4200.50, 65.63)
    assert (out["writes_per_s"], out["written_mib_per_s"]) == (2800.25, 43.75)
    assert out["fsyncs_per_s"] == 224.0
    assert out["rate"] == pytest.approx(109.38) and out["unit"] == "MiB/s"
    assert out["latency_avg_ms"] == 0.13 and out["fairness_events_avg"] == 158.0
    assert "seconds" not in out  # master's fileio report has no total time
    out = sysbench.parse(SEQRD_MASTER_NO_WRITES)
    assert (out["reads_per_s"], out["writes_per_s"], out["rate"]) == (100.0, 0.0, 1.56)


def test_parse_unknown_text():
    assert sysbench.parse("") == {}
    assert sysbench.parse("FATAL: invalid option\n") == {}


def test_command_spelling():
    cmd = sysbench.command("fileio", "--file-num=4", time=5, events=100, file_total_size="16M",
                           file_fsync_end=False, threads=2)
    assert cmd[1:] == ["fileio", "--threads=2", "--time=5", "--events=100", "--file-total-size=16M",
                       "--file-fsync-end=off", "--file-num=4"]
    assert sysbench.command("cpu", time=0.5)[-1] == "--time=0.5"
    with pytest.raises(ValueError, match="do not pass the command 'run'"):
        sysbench.command("cpu", "run")


# --------------------------------------------------------------------------
# sysbench: running (a fake binary, then the real one where installed)


@pytest.fixture
def fake_sysbench(tmp_path, monkeypatch):
    """Put a shell script named sysbench first on PATH."""
    bindir = tmp_path / "bin"
    bindir.mkdir()

    def install(script):
        path = bindir / "sysbench"
        path.write_text("#!/bin/sh\n" + textwrap.dedent(script))
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
        monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}")
        return path

    return install


def test_missing_sysbench_skips_under_pytest(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert not sysbench.available()
    with pytest.raises(pytest.skip.Exception, match="sysbench is not installed here: apt-get install sysbench"):
        sysbench.run("cpu")


def test_missing_sysbench_raises_outside_a_test(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("PYTEST_CURRENT_TEST")
    with pytest.raises(sysbench.SysbenchNotFound, match="apt-get install sysbench"):
        sysbench.run("cpu")


def test_run_parses_and_records_work(fake_sysbench, tmp_path):
    report = tmp_path / "report.txt"
    report.write_text(CPU_MASTER)
    fake_sysbench(f'cat "{report}"\n')
    out = sysbench.run("cpu", time=10, cpu_max_prime=20000)
    assert out["events_per_s"] == 1234.5 and out["test"] == "cpu"
    assert out["version"].startswith("sysbench 1.1.0")
    assert out["command"].endswith("cpu --threads=1 --time=10 --cpu-max-prime=20000 run")
    work = take_work()
    assert work["amount"] == 12346 and work["unit"] == "events"


def test_run_memory_records_mib(fake_sysbench, tmp_path):
    report = tmp_path / "report.txt"
    report.write_text(MEMORY_1_0)
    fake_sysbench(f'cat "{report}"\n')
    sysbench.run("memory", time=5)
    work = take_work()
    assert work["amount"] == 34857.50 and work["unit"] == "MiB"


def test_run_failures_are_clear(fake_sysbench, scratch):
    fake_sysbench('echo "invalid option: --bogus=1"; exit 1\n')
    with pytest.raises(sysbench.SysbenchError, match=r"exit status 1\):\ninvalid option: --bogus=1"):
        sysbench.run("cpu", bogus=1)
    fake_sysbench('echo "not a report"\n')
    with pytest.raises(sysbench.SysbenchError, match="cannot read the report"):
        sysbench.run("cpu")
    # fileio prepare on a full scratch filesystem
    fake_sysbench('echo "FATAL: Failed to write file! errno = 28 (No space left on device)"; exit 1\n')
    with pytest.raises(fileio.NoSpaceError, match=f"scratch directory {scratch}"):
        sysbench.run("fileio", file_test_mode="seqwr", file_total_size="1G")


def test_run_fileio_prepares_and_cleans_up_in_scratch(fake_sysbench, scratch, tmp_path):
    log = tmp_path / "calls.log"
    report = tmp_path / "report.txt"
    report.write_text(FILEIO_1_0)
    fake_sysbench(f"""\
        for last; do :; done
        echo "$last $(pwd)" >> "{log}"
        if [ "$last" = run ]; then cat "{report}"; fi
        """)
    out = sysbench.run("fileio", file_test_mode="rndrw", file_total_size="16M")
    workdir = scratch / "virtoverhead-sysbench"
    assert log.read_text().split("\n")[:3] == [f"prepare {workdir}", f"run {workdir}", f"cleanup {workdir}"]
    assert not workdir.exists()
    assert out["reads_per_s"] == 1500.25
    work = take_work()
    assert work["unit"] == "MiB" and work["amount"] == pytest.approx((23.44 + 15.63) * 10.01)


@pytest.mark.skipif(not sysbench.available(), reason=sysbench.SKIP_MESSAGE)
def test_real_sysbench_cpu_and_fileio(scratch):
    out = sysbench.run("cpu", events=20, cpu_max_prime=2000)
    assert out["events"] == 20 and out["cpu_max_prime"] == 2000 and out["unit"] == "events/s"
    assert take_work()["amount"] == 20
    out = sysbench.run("fileio", events=20, file_total_size="256K", file_num=2, file_test_mode="rndrw")
    assert out["unit"] == "MiB/s" and out["reads_per_s"] + out["writes_per_s"] > 0
    assert os.listdir(scratch) == []


# --------------------------------------------------------------------------
# the package


def test_package_imports_no_heavy_modules():
    code = ("import sys, pytest_virtoverhead.workloads as w; "
            "print(sorted(m for m in ('numpy', 'docker', 'libvirt', 'pytest') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_every_workload_has_a_docstring_with_units():
    functions = [cpu.primes, cpu.primes_numpy, memory.blocks, fileio.prepare, fileio.run, fileio.benchmark,
                 syscalls.getppid, spawn.fork_exec, sysbench.run]
    for fn in functions:
        doc = fn.__doc__ or ""
        assert "/s" in doc, fn.__qualname__


def test_workloads_run_in_a_worker(baremetal):
    """From env.run and env.benchmark, in the worker's own scratch directory."""
    result = baremetal.run(cpu.primes, 100, 2)
    assert result["primes"] == 24 and result["unit"] == "events/s"
    result = baremetal.run(fileio.benchmark, "seqrd", total_size=64 * KiB, files=1)
    assert result["reads"] == 4 and result["directory"] != fileio.default_directory()
    m = baremetal.pedantic(syscalls.getppid, args=(1000,), samples=3, sample_time=0.001)
    assert len(m.samples) == 3
