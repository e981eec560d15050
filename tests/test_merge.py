"""CI shards merged into one view: the run document's ``machine``
block (hand-fed inputs) and ``runmerge`` on hand-made documents, then the
``merge`` command through ``cli.main``."""

import json
import subprocess

import pytest

from pytest_virtoverhead.offline import cli, runcompare, runmerge
from pytest_virtoverhead.results import JSON_VERSION, RunDocument, machine as machine_mod, run_document
from pytest_virtoverhead.results.model import ItemResult

A, B = "tests/x.py::test_a", "tests/x.py::test_b"


# -- the machine block --------------------------------------------------------


def test_machine_name_precedence(monkeypatch):
    assert machine_mod.machine_name("ini-name", {"VIRTOVERHEAD_MACHINE": "env-name"}) == \
        ("env-name", "VIRTOVERHEAD_MACHINE")
    assert machine_mod.machine_name(" ini-name ", {"VIRTOVERHEAD_MACHINE": " "}) == ("ini-name", "virt_machine (ini)")
    monkeypatch.setattr(machine_mod.socket, "gethostname", lambda: "box")
    assert machine_mod.machine_name(None, {}) == ("box", "hostname")


def test_ci_ids_only_those_set():
    env = {"GITHUB_RUN_ID": "77", "GITHUB_RUN_ATTEMPT": "2", "GITHUB_JOB": "shard", "GITHUB_WORKFLOW": "",
           "CI_JOB_ID": "5", "BUILDKITE_BUILD_ID": "b-1", "HOME": "/root"}
    assert machine_mod.ci_ids(env) == {"GITHUB_RUN_ID": "77", "GITHUB_RUN_ATTEMPT": "2", "GITHUB_JOB": "shard",
                                       "CI_JOB_ID": "5", "BUILDKITE_BUILD_ID": "b-1"}
    assert machine_mod.ci_ids({}) == {}


def test_commit_from_git_else_ci_variable_else_none(tmp_path):
    assert machine_mod.commit(str(tmp_path), {}) == (None, None)  # not a repository
    assert machine_mod.commit(str(tmp_path / "missing"), {"GITHUB_SHA": "abc"}) == ("abc", "GITHUB_SHA")
    assert machine_mod.commit(None, {}) == (None, None)
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    try:
        subprocess.run([*git, "init", "-q"], check=True)
        subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "x"], check=True)
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("git is not usable here")
    sha, source = machine_mod.commit(str(tmp_path), {"GITHUB_SHA": "abc"})
    assert source == "git" and len(sha) == 40


def test_commit_without_git_on_path(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert machine_mod.commit(str(tmp_path), {}) == (None, None)


def test_describe_takes_engines_and_cpus_from_metadata_and_virtualization_from_host():
    metadata = {"baremetal": {"kind": "baremetal", "cpuset": [1]},
                "container": {"kind": "container", "cpuset": [1, 3], "docker_version": "20.10.24"},
                "vm": {"kind": "vm", "qemu_version": "7.2.0", "libvirt_version": "9.0.0", "cpuset": "bad"},
                "other": "not an object"}
    block = machine_mod.describe(metadata, {"virtual": True, "hypervisor": "KVM"}, ini_name="ci-large",
                                 rootdir=None, environ={"GITHUB_RUN_ID": "9"})
    assert block["name"] == "ci-large" and block["name_source"] == "virt_machine (ini)"
    assert block["virtual"] is True and block["hypervisor"] == "KVM"
    assert (block["docker_version"], block["qemu_version"], block["libvirt_version"]) == \
        ("20.10.24", "7.2.0", "9.0.0")
    assert block["cpus_used"] == [1, 3] and block["ci"] == {"GITHUB_RUN_ID": "9"}
    assert block["kernel"] and "cpu_model" in block and block["commit"] is None
    bare = machine_mod.describe({}, {}, environ={})
    assert "docker_version" not in bare and bare["cpus_used"] == [] and bare["virtual"] is False


def test_run_document_carries_the_machine_block(monkeypatch):
    monkeypatch.setenv("VIRTOVERHEAD_MACHINE", "shard-host")
    res = ItemResult.from_samples(A, ["baremetal", "vm"], "baremetal", {"baremetal": [1.0, 1.1], "vm": [2.0, 2.2]})
    data = run_document([res], {"baremetal": {"kind": "baremetal", "cpuset": [0]}}, seed=1, baseline="baremetal",
                        rounds=2, machine_name="ignored").to_json()
    assert data["version"] == JSON_VERSION == 3
    assert data["machine"]["name"] == "shard-host" and data["machine"]["cpus_used"] == [0]
    assert data["machine"]["virtual"] == data["host"]["virtual"]
    assert RunDocument.from_json(data).machine["name"] == "shard-host"


# -- merging hand-made documents -----------------------------------------------


def run(machine, tests, *, version=3, baseline="baremetal", confidence=0.95, written="2026-12-07T10:00:00+00:00",
        accel="tcg", **top):
    """A run document of ``machine`` (None: no machine block) with
    ``tests`` {nodeid: [claim texts]}: baremetal and vm, 4 rounds each."""
    results, claims, objs = [], [], []
    for t, texts in tests.items():
        for env, value in (("baremetal", 1.0), ("vm", 2.0)):
            rounds = [{"round": i, "process": i % 2, "value": value + i / 100, "used": True} for i in range(4)]
            results.append({"test": t, "env": env, "samples": [r["value"] for r in rounds], "median": value,
                            "source": "call", "rounds": rounds})
        claims += [{"test": t, "claim": c, "env": "vm", "baseline": baseline, "ratio": 2.0, "ci": [1.9, 2.1],
                    "verdict": "pass"} for c in texts]
        objs.append({"test": t, "envs": ["baremetal", "vm"], "rounds": 4, "outcome": "measured"})
    data = {"version": version, "written": written, "seed": 1, "baseline": baseline, "rounds": 4,
            "host": {"virtual": False, "hypervisor": None, "evidence": [], "label": "bare metal"},
            "statistics": {"confidence": confidence, "processes": "auto"},
            "noise": {"rule": {}, "disturbed_rounds": 1, "retried_rounds": 1},
            "environments": {"baremetal": {"kind": "baremetal"}, "vm": {"kind": "vm", "accel": accel}},
            "results": results, "claims": claims, "tests": objs, "aborted": False, "exitstatus": 0,
            "verdict_method": {"confidence": confidence, "correction": "none", "family_size": len(claims)}, **top}
    if machine is not None:
        data["machine"] = {"name": machine, "ci": {"GITHUB_JOB": machine}}
    return data


def merged(*runs):
    return runmerge.merge_runs([(f"run{i}.json", r) for i, r in enumerate(runs, 1)])


def test_disjoint_shards_of_two_machines_keep_plain_ids_and_read_as_a_run():
    out = merged(run("m1", {A: ["vm <= 3 * baremetal"]}, exitstatus=1),
                 run("m2", {B: ["vm <= 3 * baremetal"]}, written="2026-12-07T11:00:00+00:00", accel="kvm"))
    assert out["version"] == JSON_VERSION
    assert [t["test"] for t in out["tests"]] == [A, B]
    assert {(r["test"], r["machine"]) for r in out["results"]} == {(A, "m1"), (B, "m2")}
    assert [(c["test"], c["machine"]) for c in out["claims"]] == [(A, "m1"), (B, "m2")]
    assert not any("nodeid" in r for r in out["results"])
    assert list(out["machines"]) == ["m1", "m2"] and "machine" not in out
    assert out["machines"]["m2"]["environments"]["vm"]["accel"] == "kvm"
    assert out["environments"]["vm"]["accel"] == "tcg/kvm"
    assert out["environments"]["vm"]["machines"] == ["m1", "m2"]
    assert out["written"] == "2026-12-07T11:00:00+00:00" and out["exitstatus"] == 1
    assert out["noise"]["disturbed_rounds"] == 2
    assert out["verdict_method"]["family_size"] == 2
    assert "cost" not in out  # no test had an account
    assert [r["machine"] for r in out["merged"]["runs"]] == ["m1", "m2"]
    assert out["merged"]["runs"][1]["ci"] == {"GITHUB_JOB": "m2"}
    runcompare.check_run(out)  # compare reads it
    doc = RunDocument.from_json(out)
    assert [t.nodeid for t in doc.tests] == [A, B] and len(doc.claims) == 2


def test_one_machine_keeps_its_machine_block():
    out = merged(run("m1", {A: []}), run("m1", {B: []}))
    assert out["machine"] == {"name": "m1", "ci": {"GITHUB_JOB": "m1"}}
    assert out["machines"]["m1"]["runs"] == ["run1.json", "run2.json"]
    assert out["host"]["label"] == "bare metal"


def test_the_same_test_on_two_machines_stays_two_records_labelled_by_machine():
    out = merged(run("m1", {A: ["vm <= 3 * baremetal"], B: []}), run("m2", {A: ["vm <= 3 * baremetal"]}))
    assert [t["test"] for t in out["tests"]] == [f"{A} @ m1", B, f"{A} @ m2"]
    by_machine = {r["machine"]: r for r in out["results"] if r["env"] == "vm" and r.get("nodeid") == A}
    assert set(by_machine) == {"m1", "m2"}
    assert all(len(r["samples"]) == 4 for r in by_machine.values())  # nothing pooled
    assert out["merged"]["relabelled"] == [A]
    cmp = runcompare.compare_runs(out, out)
    assert {row.test for row in cmp.rows} == {f"{A} @ m1", f"{A} @ m2", B}
    # Merging the merged run again changes nothing about the records.
    again = runmerge.merge_runs([("all.json", out)])
    assert [t["test"] for t in again["tests"]] == [f"{A} @ m1", B, f"{A} @ m2"]
    assert again["merged"]["runs"][0]["file"] == "all.json: run1.json"


def test_the_same_test_twice_on_one_machine_is_refused():
    with pytest.raises(runmerge.MergeError, match=rf"{A} was measured twice on machine 'm1': in run1.json and in "
                                                  r"run2.json"):
        merged(run("m1", {A: []}), run("m1", {A: [], B: []}))


def test_different_claims_for_one_test_are_refused_naming_both():
    with pytest.raises(runmerge.MergeError) as info:
        merged(run("m1", {A: ["vm <= 3 * baremetal"]}), run("m2", {A: ["vm <= 2 * baremetal"]}))
    msg = str(info.value)
    assert f"{A} has different claims in run1.json (machine 'm1'): ['vm <= 3 * baremetal']" in msg
    assert "in run2.json (machine 'm2'): ['vm <= 2 * baremetal']" in msg


@pytest.mark.parametrize("second, words", [
    (run("m2", {B: []}, version=99), "run2.json: unsupported --virt-json version 99"),
    (run("m2", {B: []}, version=1), "run2.json: a version-1 --virt-json file (no rounds, no machine): merge reads "
                                    "versions 2 and 3"),
    (run("m2", {B: []}, version=2), "different document versions (write every shard with the same "
                                    "pytest-virtoverhead): run1.json has 3, run2.json has 2"),
    (run("m2", {B: []}, baseline="control"), "different baselines: run1.json has 'baremetal', run2.json has "
                                             "'control'"),
    (run("m2", {B: []}, confidence=0.99), "different confidence levels: run1.json has 0.95, run2.json has 0.99"),
    (run("m2", {B: []}, aborted=True, exitstatus=2), "run2.json: this run did not finish"),
    ({"version": 3, "results": [{"test": B}]}, "run2.json: results[0]: 'env' must be a non-empty string"),
])
def test_runs_that_cannot_be_merged(second, words):
    with pytest.raises(runmerge.MergeError) as info:
        merged(run("m1", {A: []}), second)
    assert words in str(info.value)


def test_version_2_runs_merge_as_one_unnamed_machine():
    out = merged(run(None, {A: []}, version=2), run(None, {B: []}, version=2))
    assert list(out["machines"]) == [runmerge.UNNAMED] and out["version"] == JSON_VERSION


def test_holm_families_stay_per_run():
    a, b = run("m1", {A: ["vm <= 3 * baremetal"]}), run("m2", {B: ["vm <= 3 * baremetal"]})
    for r in (a, b):
        r["verdict_method"]["correction"] = "holm"
    assert merged(a, b)["verdict_method"]["family_size"] == "1 + 1 (each run its own family)"


def test_compare_notes_a_change_of_machine():
    a, b = run("m1", {A: []}), merged(run("m2", {A: []}), run("m3", {B: []}))
    notes = {row.test: row.note for row in runcompare.compare_runs(a, b).rows}
    assert notes == {A: "machine changed: m1 -> m2"}
    assert runcompare.compare_runs(a, a).rows[0].note == ""


# -- the command ----------------------------------------------------------------


def write(tmp_path, name, data):
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return str(path)


def test_merge_command_writes_the_document_and_markdown(tmp_path, capsys):
    a = write(tmp_path, "a.json", run("m1", {A: ["vm <= 3 * baremetal"]}))
    b = write(tmp_path, "b.json", run("m2", {B: ["vm <= 3 * baremetal"]}))
    out, md = str(tmp_path / "out" / "all.json"), str(tmp_path / "summary.md")
    assert cli.main(["merge", a, b, "-o", out, "--markdown", md]) == 0
    printed = capsys.readouterr().out
    assert "merged 2 run(s) of 2 machine(s) (m1, m2): 2 test record(s), 2 claim(s)" in printed
    assert json.loads(open(out).read())["merged"]["machines"] == ["m1", "m2"]
    text = open(md).read()
    assert "2 claims" in text and "Merged from 2 machines: `m1`, `m2`" in text
    assert cli.main(["compare", out, out]) == 0
    pytest.importorskip("matplotlib")
    html = str(tmp_path / "all.html")
    assert cli.main(["merge", a, b, "-o", str(tmp_path / "again.json"), "--report", html]) == 0
    assert "merged from 2 machines: m1, m2" in open(html).read()


def test_history_follows_claims_over_merged_runs(tmp_path):
    from pytest_virtoverhead.offline import history

    first = merged(run("m1", {A: ["vm <= 3 * baremetal"]}), run("m2", {B: ["vm <= 3 * baremetal"]}))
    later = merged(run("m3", {A: ["vm <= 3 * baremetal"], B: ["vm <= 3 * baremetal"]},
                       written="2026-12-08T10:00:00+00:00"))
    paths = [write(tmp_path, "1.json", first), write(tmp_path, "2.json", later)]
    hist = history.history_of(paths)
    assert len(hist.runs) == 2 and {(s.test, s.claim) for s in hist.series} == {
        (A, "vm <= 3 * baremetal"), (B, "vm <= 3 * baremetal")}


@pytest.mark.parametrize("case", ["output is input", "given twice", "missing", "not json", "conflict"])
def test_merge_command_exit_2(tmp_path, capsys, case):
    a = write(tmp_path, "a.json", run("m1", {A: ["vm <= 3 * baremetal"]}))
    b = write(tmp_path, "b.json", run("m2", {A: ["vm <= 2 * baremetal"]}))
    (tmp_path / "bad.json").write_text("{")
    argv, words = {
        "output is input": (["merge", a, str(tmp_path / "." / "a.json"), "-o", a], "is also an input"),
        "given twice": (["merge", a, a, "-o", str(tmp_path / "o.json")], "is given twice"),
        "missing": (["merge", a, str(tmp_path / "nope.json"), "-o", str(tmp_path / "o.json")], "cannot read"),
        "not json": (["merge", a, str(tmp_path / "bad.json"), "-o", str(tmp_path / "o.json")], "not JSON"),
        "conflict": (["merge", a, b, "-o", str(tmp_path / "o.json")], "has different claims in"),
    }[case]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("pytest-virtoverhead merge: ") and words in err
    assert not (tmp_path / "o.json").exists()


def test_merge_needs_an_output(tmp_path):
    with pytest.raises(SystemExit) as info:
        cli.main(["merge", write(tmp_path, "a.json", run("m1", {A: []}))])
    assert info.value.code == 2
