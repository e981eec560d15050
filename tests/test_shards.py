"""CI shards end to end: real shard runs (baremetal and an A/A
control) merged by the ``merge`` command, ``compare`` reading the merged
run, refusals with exit status 2; and docs/ci.md's sharded GitHub Actions
recipe run here, its shard commands and its merge step word for word."""

import glob
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from virthelp import aa_args, read_json

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "pytest_virtoverhead.offline.cli"]
AA = aa_args(rounds=3, seed=5)

SUITE = """
import time
import pytest

@pytest.mark.virt(claims=["control <= 100 * baremetal"])
def test_a():
    time.sleep(0.002)

@pytest.mark.virt(claims=["control <= 100 * baremetal"])
def test_b():
    time.sleep(0.002)
"""


def cli(cwd, *args):
    return subprocess.run([*CLI, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=300)


def shard(pytester, monkeypatch, machine, *args):
    monkeypatch.setenv("VIRTOVERHEAD_MACHINE", machine)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    result = pytester.runpytest_subprocess(*AA, *args)
    assert result.ret == 0, result.stdout.str()[-3000:]


def test_two_shards_merge_and_compare_reads_the_merged_run(pytester, monkeypatch):
    pytester.makepyfile(test_s=SUITE)
    monkeypatch.setenv("GITHUB_RUN_ID", "4242")
    shard(pytester, monkeypatch, "runner-1", "-k", "test_a", "--virt-json=s1.json")
    shard(pytester, monkeypatch, "runner-2", "-k", "test_b", "--virt-json=s2.json")
    s1 = read_json(pytester, "s1.json")
    assert s1["version"] == 3 and s1["machine"]["name"] == "runner-1"
    assert s1["machine"]["ci"]["GITHUB_RUN_ID"] == "4242" and s1["machine"]["cpus_used"]

    out = cli(pytester.path, "merge", "s1.json", "s2.json", "-o", "all.json", "--markdown", "all.md")
    assert out.returncode == 0, out.stderr
    assert "merged 2 run(s) of 2 machine(s) (runner-1, runner-2)" in out.stdout
    data = read_json(pytester, "all.json")
    assert {(r["test"], r["machine"]) for r in data["results"]} == {
        ("test_s.py::test_a", "runner-1"), ("test_s.py::test_b", "runner-2")}
    assert len(data["claims"]) == 2 and all(c["verdict"] == "pass" for c in data["claims"])
    walls = [json.loads((pytester.path / f).read_text())["cost"]["wall"] for f in ("s1.json", "s2.json")]
    assert data["cost"]["wall"] == pytest.approx(sum(walls))
    assert "2 claims" in (pytester.path / "all.md").read_text()

    # compare reads the merged run, against itself and against a shard.
    cmp = cli(pytester.path, "compare", "all.json", "all.json")
    assert cmp.returncode == 0, cmp.stdout + cmp.stderr
    assert "test_s.py::test_a" in cmp.stdout and "test_s.py::test_b" in cmp.stdout
    cmp = cli(pytester.path, "compare", "s1.json", "all.json")
    assert cmp.returncode == 0, cmp.stdout + cmp.stderr
    assert "measured only in B (1):" in cmp.stdout


def test_conflicting_claims_and_unknown_versions_are_refused(pytester, monkeypatch):
    pytester.makepyfile(test_s=SUITE)
    shard(pytester, monkeypatch, "runner-1", "-k", "test_a", "--virt-json=s1.json")
    shard(pytester, monkeypatch, "runner-2", "-k", "test_a", "--virt-json=s2.json",
          "--virt-claim=control <= 50 * baremetal")
    out = cli(pytester.path, "merge", "s1.json", "s2.json", "-o", "all.json")
    assert out.returncode == 2
    assert re.search(r"test_s.py::test_a has different claims in s1.json \(machine 'runner-1'\): "
                     r"\['control <= 100 \* baremetal'\] and in s2.json \(machine 'runner-2'\): "
                     r"\['control <= 100 \* baremetal', 'control <= 50 \* baremetal'\]", out.stderr), out.stderr
    assert not (pytester.path / "all.json").exists()

    v99 = read_json(pytester, "s1.json")
    v99["version"] = 99
    (pytester.path / "v99.json").write_text(json.dumps(v99))
    out = cli(pytester.path, "merge", "s1.json", "v99.json", "-o", "all.json")
    assert out.returncode == 2
    assert "v99.json: unsupported --virt-json version 99 (this tool reads 2, 3)" in out.stderr


# -- the sharded GitHub Actions recipe of docs/ci.md, run here --------------------


def recipe():
    """The workflow of docs/ci.md's shards section."""
    yaml = pytest.importorskip("yaml")
    text = (ROOT / "docs" / "ci.md").read_text()
    section = text[text.index("## Shards: one view of several CI jobs"):]
    block = section[section.index("```yaml\n") + 8:]
    return yaml.safe_load(block[:block.index("```")])


def substitute(text, values):
    """``${{ matrix.X }}`` replaced as GitHub would."""
    return re.sub(r"\$\{\{\s*matrix\.(\w+)\s*\}\}", lambda m: str(values[m.group(1)]), text)


def test_shard_recipe_runs_here(pytester, monkeypatch):
    """Each shard's command on a small generated suite (the container is a
    second baremetal environment named ``container``; the VM is absent, so
    its claim is skipped), the upload and download as files, then the merge
    step word for word with GITHUB_STEP_SUMMARY pointed at a file, and
    ``compare`` on the merged run. (The test's own name avoids the letters
    of the recipe's ``-k io``, which pytest would match.)"""
    pytest.importorskip("matplotlib")
    jobs = recipe()["jobs"]
    matrix = jobs["shard"]["strategy"]["matrix"]["include"]
    [measure] = [s for s in jobs["shard"]["steps"] if "--virt-compare" in str(s.get("run", ""))]
    [upload] = [s for s in jobs["shard"]["steps"] if str(s.get("uses", "")).startswith("actions/upload-artifact@")]
    [download] = [s for s in jobs["merge"]["steps"] if str(s.get("uses", "")).startswith("actions/download-artifact@")]
    [merge] = [s for s in jobs["merge"]["steps"] if "pytest-virtoverhead merge" in str(s.get("run", ""))]
    [keep] = [s for s in jobs["merge"]["steps"] if str(s.get("uses", "")).startswith("actions/upload-artifact@")]
    assert jobs["merge"]["needs"] == "shard" and jobs["merge"]["if"] == "always()" and upload["if"] == "always()"
    assert len(matrix) >= 2

    suite = pytester.path / "tests" / "perf"
    suite.mkdir(parents=True)
    (suite / "test_perf.py").write_text(
        "import time\nimport pytest\n\n"
        "@pytest.mark.virt\ndef test_io_write():\n    time.sleep(0.002)\n\n"
        "@pytest.mark.virt\ndef test_parse_text():\n    time.sleep(0.002)\n")
    shards = pytester.path / download["with"]["path"]
    shards.mkdir()
    measured = {}
    for values in matrix:
        words = shlex.split(substitute(measure["run"], values))
        pytest_at = next(i for i, w in enumerate(words) if w.endswith("/pytest"))
        assert words[0] == "sudo" and "GITHUB_STEP_SUMMARY" in words[1] and "GITHUB_RUN_ID" in words[1]
        args = [w for w in words[pytest_at + 1:] if not w.startswith("--virt-require")]
        monkeypatch.setenv("VIRTOVERHEAD_MACHINE", f"runner-{values['shard']}")
        monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(pytester.path / f"summary-{values['shard']}.md"))
        result = pytester.runpytest_subprocess(*args, "--virt-envs=baremetal,container=baremetal",
                                               "--virt-rounds=3", "-p", "no:cacheprovider")
        out = result.stdout.str() + result.stderr.str()
        assert result.ret in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED), out
        path = pytester.path / substitute(upload["with"]["path"], values)
        assert path.is_file(), f"{path.name} (uploaded by the recipe) was not written\n{out}"
        measured[values["shard"]] = {r["test"] for r in json.loads(path.read_text())["results"]}
        shutil.copy(path, shards / path.name)  # upload, then download with merge-multiple
    assert measured == {"io": {"tests/perf/test_perf.py::test_io_write"},
                        "rest": {"tests/perf/test_perf.py::test_parse_text"}}

    summary = pytester.path / "summary-merge.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    words = shlex.split(merge["run"])
    assert words[0].endswith("/pytest-virtoverhead")
    argv = []
    for w in words[1:]:
        w = os.path.expandvars(w)
        argv += sorted(glob.glob(w, root_dir=pytester.path)) if "*" in w else [w]
    out = cli(pytester.path, *argv)
    assert out.returncode == 0, out.stderr
    for path in keep["with"]["path"].split():
        assert (pytester.path / path).is_file(), f"{path} (kept by the recipe) was not written"
    data = read_json(pytester, "virt.json")
    assert {c["test"] for c in data["claims"]} == measured["io"] | measured["rest"]
    assert {c["verdict"] for c in data["claims"] if c["env"] == "vm"} == {"skipped"}
    assert list(data["machines"]) == ["runner-io", "runner-rest"]
    text = summary.read_text()
    assert "test_io_write" in text and "test_parse_text" in text and "Merged from 2 machines" in text
    cmp = cli(pytester.path, "compare", "virt.json", "virt.json")
    assert cmp.returncode == 0, cmp.stdout + cmp.stderr
