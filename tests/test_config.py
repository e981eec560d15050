"""Option parsing: environments, CPU sets, memory, claims sources."""

import pytest

from pytest_virtoverhead.judge.optionvalues import parse_cpus, parse_memory
from pytest_virtoverhead.session.config import build_settings, parse_env_options, parse_envs


def test_parse_envs_kinds_and_names():
    specs = parse_envs("baremetal, control=baremetal,crun=container")
    assert [(s.name, s.kind) for s in specs] == [
        ("baremetal", "baremetal"), ("control", "baremetal"), ("crun", "container")]


@pytest.mark.parametrize("text, words", [
    ("baremetal,docker", "unknown environment kind 'docker'"),
    ("baremetal,baremetal", "named twice"),
    ("baremetal,,vm", "empty item"),
    ("1x=baremetal", "invalid environment name '1x'"),
    ("a-b=container", "invalid environment name 'a-b'"),
])
def test_parse_envs_errors(text, words):
    with pytest.raises(ValueError, match=words):
        parse_envs(text)


def test_unknown_kind_lists_known_kinds():
    with pytest.raises(ValueError) as info:
        parse_envs("podman")
    assert "baremetal, container, vm" in str(info.value)


def test_env_options():
    assert parse_env_options(["crun: runtime=crun scratch=volume", "", "# c", "vm2: vcpus=2"]) == {
        "crun": {"runtime": "crun", "scratch": "volume"}, "vm2": {"vcpus": "2"}}
    with pytest.raises(ValueError, match="key=value"):
        parse_env_options(["crun: runtime"])
    with pytest.raises(ValueError, match="NAME: key=value"):
        parse_env_options(["runtime=crun"])


def test_cpus():
    assert parse_cpus("auto", [0, 1, 2, 3]) == (3,)
    assert parse_cpus("all", [0, 1]) is None
    assert parse_cpus("0-1,3", [0, 1, 2, 3]) == (0, 1, 3)
    with pytest.raises(ValueError, match=r"CPU\(s\) \[7\] not available"):
        parse_cpus("7", [0, 1])
    with pytest.raises(ValueError, match="runs backwards"):
        parse_cpus("3-1", [0, 1, 2, 3])
    with pytest.raises(ValueError, match="cannot read"):
        parse_cpus("two", [0, 1])


def test_memory():
    assert parse_memory("1024") == 1024
    assert parse_memory("512m") == 512
    assert parse_memory("2g") == 2048
    assert parse_memory("2GiB") == 2048
    with pytest.raises(ValueError, match="too little"):
        parse_memory("64m")
    with pytest.raises(ValueError, match="cannot read"):
        parse_memory("lots")


def test_build_settings_defaults_and_sources():
    s = build_settings({"envs": "baremetal,control=baremetal", "cli_claims": ["control <= 2 * baremetal"],
                        "ini_claims": ["control >= 0.5 * baremetal"], "seed": "42"})
    assert s.baseline == "baremetal"
    assert [c.text for c in s.claims] == ["control >= 0.5 * baremetal", "control <= 2 * baremetal"]
    assert s.seed == 42 and s.rounds == 12 and s.warmup == 1
    assert s.processes == 0 and s.calls == 0 and s.confidence == 0.95 and s.hash_seed == "paired"
    # auto: one process per round up to 20 (at least 2), 4 in a VM; an explicit count everywhere
    assert s.processes_for("control", 12) == 12 and s.processes_for("baremetal", 20) == 20
    assert s.processes_for("baremetal", 50) == 20
    assert s.processes_for("baremetal", 3) == 3 and s.processes_for("baremetal", 1) == 2
    assert s.processes_for("vm", 12) == 4
    assert build_settings({"processes": "6"}).processes_for("vm", 12) == 6
    with pytest.raises(ValueError, match="--virt-processes: expected a whole number"):
        build_settings({"processes": "many"})


@pytest.mark.parametrize("raw, words", [
    ({"envs": "baremetal", "baseline": "vm"}, "--virt-baseline: unknown environment 'vm'"),
    ({"envs": "baremetal", "cli_claims": ["vmm <= 2 * baremetal"]}, "--virt-claim: invalid claim at column 1"),
    ({"envs": "baremetal", "ini_claims": ["x <= y y"]}, "virt_claims \\(ini\\)"),
    ({"envs": "baremetal", "rounds": "0"}, "--virt-rounds: must be at least 1"),
    ({"envs": "baremetal", "rounds": "many"}, "--virt-rounds: expected a whole number"),
    ({"envs": "baremetal", "timeout": "-1"}, "--virt-timeout: must be positive"),
    ({"envs": "baremetal", "seed": "x"}, "--virt-seed"),
    ({"envs": "baremetal", "require": ["vmm"]}, "--virt-require: unknown environment 'vmm'"),
    ({"envs": "baremetal", "env_options": ["ctrl: nice=1"]}, "unknown environment\\(s\\) ctrl"),
    ({"envs": "baremetal", "env_options": ["baremetal: speed=11"]}, "unknown option\\(s\\) speed"),
])
def test_build_settings_errors(raw, words):
    with pytest.raises(ValueError, match=words):
        build_settings(raw)


def test_require_by_kind_and_all():
    s = build_settings({"envs": "baremetal,control=baremetal", "require": ["baremetal"]})
    assert s.required(s.spec("control")) and s.required(s.spec("baremetal"))
    s = build_settings({"envs": "baremetal,control=baremetal", "require": ["control"]})
    assert s.required(s.spec("control")) and not s.required(s.spec("baremetal"))


def test_plan_for_marker():
    from pytest_virtoverhead.session.config import plan_for_marker

    s = build_settings({"envs": "baremetal,container,vm", "cli_claims": ["vm <= 9 * baremetal"], "rounds": "4"})
    plan = plan_for_marker("t.py::a", (), {"claims": "container <= 2 * baremetal"}, s)
    assert plan.envs == ["baremetal", "container", "vm"] and plan.rounds == 4
    assert [c.text for c in plan.claims] == ["container <= 2 * baremetal", "vm <= 9 * baremetal"]
    # envs= keeps the baseline and drops claims about other environments
    plan = plan_for_marker("t.py::a", (), {"envs": ["container"], "rounds": 2}, s)
    assert plan.envs == ["baremetal", "container"] and plan.claims == [] and plan.rounds == 2
    with pytest.raises(ValueError, match=r"t.py::a: @pytest.mark.virt takes claims"):
        plan_for_marker("t.py::a", ("x",), {}, s)
    with pytest.raises(ValueError, match=r"t.py::a: invalid claim at column 1"):
        plan_for_marker("t.py::a", (), {"claims": ["kvm <= 2 * baremetal"]}, s)
    with pytest.raises(ValueError, match=r"rounds: must be at least 1"):
        plan_for_marker("t.py::a", (), {"rounds": 0}, s)


@pytest.mark.parametrize("raw, value", [("0.9", 0.9), ("99%", 0.99), ("95", 0.95), (None, 0.95)])
def test_confidence_levels(raw, value):
    from pytest_virtoverhead.judge.optionvalues import parse_confidence

    assert parse_confidence(raw) == pytest.approx(value)


@pytest.mark.parametrize("raw, words", [
    ({"confidence": "1.5%"}, "--virt-confidence: the level must lie between 0.5 and 1"),
    ({"confidence": "high"}, "--virt-confidence: expected a level such as 0.95"),
    ({"processes": "0"}, "--virt-processes: must be at least 1"),
    ({"calls": "some"}, "--virt-calls: expected a whole number"),
    ({"hash_seed": "fixed"}, "--virt-hash-seed: expected one of paired, random"),
])
def test_verdict_engine_options_are_checked(raw, words):
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")):
        build_settings({"envs": "baremetal", **raw})
