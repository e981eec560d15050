"""--virt-explain's ablation environments and the share of an
overhead each removes (hand-computed numbers), and the option end to end."""

from __future__ import annotations

import math

import pytest
from virthelp import aa_args, read_json

from pytest_virtoverhead.envs.base import EnvSpec
from pytest_virtoverhead.results import ItemResult
from pytest_virtoverhead.session import explain
from pytest_virtoverhead.session.config import build_settings, plan_for_marker


def test_ablation_specs_switch_one_option_each():
    specs = [EnvSpec("baremetal", "baremetal"), EnvSpec("container", "container", {"runtime": "runc"}),
             EnvSpec("open", "container", {"seccomp": "unconfined"}), EnvSpec("vm", "vm")]
    out = explain.ablation_specs(specs)
    names = [sp.name for sp, _ in out]
    # "open" already runs without seccomp: only its volume ablation.
    assert names == ["container_noseccomp", "container_volume", "open_volume"]
    sp, ab = out[0]
    assert sp.kind == "container" and sp.options == {"runtime": "runc", "seccomp": "unconfined"}
    assert ab.parent == "container" and ab.what == "seccomp off"


def test_build_settings_adds_the_ablations_and_markers_take_them():
    s = build_settings({"envs": "baremetal,container", "explain": True, "seed": 1})
    assert s.env_names == ["baremetal", "container", "container_noseccomp", "container_volume"]
    plan = plan_for_marker("t.py::a", (), {"envs": ["container"]}, s)
    assert plan.envs == ["baremetal", "container", "container_noseccomp", "container_volume"]
    assert build_settings({"envs": "baremetal,container", "seed": 1}).env_names == ["baremetal", "container"]


def test_removed_share_by_hand():
    # The container takes 1.21x the host's time; seccomp off takes 1/1.1 of
    # the container's: its own ratio is 1.1, so it removes
    # log(1.1) / log(1.21) = 50% of the overhead (on the log scale).
    share, (lo, hi) = explain.removed_share(1.21, 1 / 1.1, (1 / 1.21, 1.0))
    assert share == pytest.approx(0.5)
    assert (lo, hi) == (pytest.approx(0.0), pytest.approx(1.0))
    assert math.isnan(explain.removed_share(1.0, 0.9, (0.8, 1.0))[0])


def test_attribution_from_rounds():
    # Four rounds in two processes; the baseline 100 in every block. The
    # container 121 (ratio 1.21), seccomp off 110 or 111.1 (ratios 1.1, 1.111):
    # per round log(1.1/1.21) = -log 1.1 twice and log(1.111/1.21) twice.
    res = ItemResult.from_samples("t.py::a", ["baremetal", "container", "container_noseccomp"], "baremetal",
                                  {"baremetal": [100] * 4, "container": [121] * 4,
                                   "container_noseccomp": [110, 110, 111.1, 111.1]}, processes=2)
    res.ratios["container"] = (1.21, (1.2, 1.22))
    ab = explain.Ablation("container_noseccomp", "container", (("seccomp", "unconfined"),), "seccomp off")
    e = explain.attribution(res, ab)
    # Each process holds one round of each value: medians per process
    # (110 and 111.1 averaged on the log scale), the same in both.
    q = math.exp((math.log(110 / 121) + math.log(111.1 / 121)) / 2)
    assert e["ablated"] == pytest.approx(q)
    assert e["removed"] == pytest.approx(-math.log(q) / math.log(1.21))  # 0.474
    assert e["resolved"] and "seccomp off (container_noseccomp): time x0.914" in e["text"]
    assert "removes 47%" in e["text"]
    res.ratios["container"] = (1.01, (0.98, 1.04))
    assert "not resolved" in explain.attribution(res, ab)["text"]


def test_vm_notes_name_the_accelerator():
    notes = explain.vm_notes({"vm": {"kind": "vm", "accel": "tcg", "accel_reason": "KVM guest never ready"},
                              "baremetal": {"kind": "baremetal"}})
    assert len(notes) == 1 and notes[0].startswith("vm: accelerator tcg (KVM guest never ready): QEMU translates")


def test_explain_option_end_to_end(pytester):
    pytester.makepyfile("""
        import pytest
        @pytest.mark.virt(claims=[])
        def test_a():
            sum(range(10000))
    """)
    result = pytester.runpytest_subprocess(*aa_args("--virt-explain", "--virt-json=out.json", "--virt-markdown=out.md",
                                                    rounds=2))
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["explain (--virt-explain*", "*no ablation measured*"])
    data = read_json(pytester, "out.json")
    assert data["explain"] == {"ablations": [], "vm": []}


def test_explain_in_the_html_report():
    pytest.importorskip("matplotlib")
    from pytest_virtoverhead.render.htmlreport import render_html

    data = {"version": 3, "baseline": "baremetal", "environments": {}, "results": [], "claims": [], "tests": [],
            "explain": {"ablations": [{"test": "t.py::a", "text": "seccomp off (container_noseccomp): time x0.9"}],
                        "vm": ["vm: accelerator tcg: QEMU translates every guest instruction"]}}
    html = render_html(data)
    assert "Attribution (--virt-explain)" in html
    assert "seccomp off (container_noseccomp): time x0.9" in html and "accelerator tcg" in html
