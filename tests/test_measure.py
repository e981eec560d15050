"""The timing loop: calibration, sample counts, options (no speed assertions)."""

import gc

import pytest

from pytest_virtoverhead.guest import measure


def noop():
    return None


def test_calibration_reaches_the_sample_time():
    loops = measure.calibrate(noop, 0.002)
    assert loops > 1
    assert measure._time_loops(noop, loops) >= 0.002 * 0.5  # calibrated, allowing for jitter


def test_benchmark_shape_and_gc_restored():
    assert gc.isenabled()
    res = measure.benchmark(noop, options=measure.BenchOptions(samples=5, warmup=2, sample_time=0.001))
    assert len(res.samples) == 5 and res.warmup == 2 and res.loops >= 1
    assert all(s > 0 for s in res.samples)
    assert gc.isenabled()


def test_gc_disabled_while_timing_unless_asked():
    seen = []

    def probe():
        seen.append(gc.isenabled())

    measure.benchmark(probe, options=measure.BenchOptions(samples=1, warmup=0, sample_time=1e-4))
    assert not any(seen)
    seen.clear()
    measure.benchmark(probe, options=measure.BenchOptions(samples=1, warmup=0, sample_time=1e-4, gc=True))
    assert all(seen)


def test_options_validation():
    with pytest.raises(ValueError, match="unknown benchmark option"):
        measure.BenchOptions.from_dict({"rounds": 3})
    with pytest.raises(ValueError, match="samples must be"):
        measure.BenchOptions.from_dict({"samples": 0})
    assert measure.BenchOptions.from_dict({"samples": 3}).samples == 3
