"""Issue 24: the footprint as what an environment adds over the baseline
(hand-computed numbers)."""

from __future__ import annotations

import pytest

from pytest_virtoverhead import footprint

MiB = 1 << 20


def figs(start, idle, peak, cpu, procs):
    return {"start": {"value": start, "unit": "s", "samples": [start], "repeated": True},
            "memory_idle": {"value": idle, "unit": "B"}, "memory_peak": {"value": peak, "unit": "B"},
            "cpu": {"value": cpu, "unit": "s"},
            "process_start": {"value": 0.2, "unit": "s", "samples": [0.2] * procs, "repeated": True}}


def test_added_figures_by_hand():
    # The host: 12 workers, 180 MiB at peak, 0.8 s of CPU outside calls.
    # A VM with 4 workers: 900 MiB, 2.0 s. The host's for 4 workers: 60 MiB
    # and 0.267 s, so the VM adds 840 MiB and 1.733 s; it starts in 3 s
    # against 0.05 s (+2.95 s); idle 400 MiB against 12 MiB (+388 MiB).
    fps = {"baremetal": {"kind": "baremetal", "figures": figs(0.05, 12 * MiB, 180 * MiB, 0.8, 12)},
           "vm": {"kind": "vm", "figures": figs(3.0, 400 * MiB, 900 * MiB, 2.0, 4)},
           "c": {"kind": "container", "figures": figs(0.15, 14 * MiB, 190 * MiB, 0.9, 12)}}
    footprint.add_overheads(fps, "baremetal")
    vm = fps["vm"]["figures"]
    assert vm["memory_peak_added"]["value"] == 840 * MiB
    assert vm["cpu_added"]["value"] == pytest.approx(2.0 - 0.8 * 4 / 12)
    assert vm["start_added"]["value"] == pytest.approx(2.95)
    assert vm["memory_idle_added"]["value"] == 388 * MiB
    assert "baremetal's 180 MiB for 12 worker processes, scaled to 4: 60 MiB" in vm["memory_peak_added"]["source"]
    assert fps["c"]["figures"]["memory_peak_added"]["value"] == 10 * MiB
    assert "memory_peak_added" not in fps["baremetal"]["figures"]
    # Claims on the added figures.
    claim = footprint.parse_claim("vm.memory_added >= 4 * c.memory_added")
    res = footprint.evaluate(claim, fps)
    assert res["verdict"] == "pass" and res["ratio"] == pytest.approx(84.0)
    assert footprint.evaluate(footprint.parse_claim("vm.start_added >= 5 s"), fps)["verdict"] == "fail"


def test_no_worker_count_no_scaled_figure():
    base = figs(0.05, 12 * MiB, 180 * MiB, 0.8, 12)
    mine = figs(0.1, 13 * MiB, 200 * MiB, 1.0, 4)
    del mine["process_start"]
    out = footprint.added_figures(mine, base, "baremetal")
    assert set(out) == {"start_added", "memory_idle_added"}


def test_section_shows_the_added_rows():
    fps = {"baremetal": {"kind": "baremetal", "figures": figs(0.05, 12 * MiB, 180 * MiB, 0.8, 12)},
           "c": {"kind": "container", "figures": figs(0.15, 14 * MiB, 190 * MiB, 0.9, 12)}}
    footprint.add_overheads(fps, "baremetal")
    lines = footprint.section_lines(fps)
    assert any(line.strip().startswith("memory peak added") and "10 MiB" in line for line in lines)
