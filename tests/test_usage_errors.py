"""No run lost, no newcomer stopped: claims about environments not in the
run are skipped, outputs that cannot be written are usage errors before
anything is measured, an earlier result file is kept when nothing was
measured, and options and markers with bad values are usage errors that
say why. docs/faults.md lists the cases with their messages."""

import json

import pytest
from virthelp import aa_args, read_json

from pytest_virtoverhead.judge.optionvalues import parse_memory
from pytest_virtoverhead.session.config import build_settings, plan_for_marker

AA = aa_args(rounds=2, seed=3)


# --------------------------------------------------------------------------
# point 2: a suite written for three environments runs on a machine with two

THREE = """
import pytest

@pytest.mark.virt(claims=["container ~= baremetal +- 50%", "vm <= 100 * baremetal"])
def test_both():
    pass

@pytest.mark.virt(claims=["vm <= 100 * baremetal"], envs=["vm"])
def test_vm_only():
    pass

@pytest.mark.virt(claims=["nosuch <= 2 * baremetal"])
def test_typo():
    pass
"""


def test_claims_about_a_known_environment_not_in_the_run_are_skipped(pytester):
    pytester.makepyfile(test_three=THREE)
    args = ["--virt-compare", "--virt-envs=baremetal,container", "--virt-rounds=2", "-p", "no:cacheprovider",
            "-k", "not typo", "--virt-json=o.json", "-rs"]
    result = pytester.runpytest_subprocess(*args)
    # Before: exit 4, "unknown environment 'vm'".
    assert result.ret == pytest.ExitCode.OK, result.stdout.str() + result.stderr.str()
    # test_both runs (in the container if Docker works here, else its
    # container claim is skipped too); test_vm_only has nothing to compare.
    result.stdout.fnmatch_lines(["*SKIPPED*no environment to compare with: vm: not in this run*"])
    result.stdout.fnmatch_lines(["*skipped*test_both: vm <= 100 * baremetal (vm: not in this run)*"])
    data = read_json(pytester, "o.json")
    vm_claims = [c for c in data["claims"] if c["env"] == "vm"]
    assert [(c["test"].split("::")[1], c["verdict"], c["reason"]) for c in vm_claims] == [
        ("test_both", "skipped", "vm: not in this run"), ("test_vm_only", "skipped", "vm: not in this run")]


def test_a_name_that_is_neither_kind_nor_environment_is_still_a_usage_error(pytester):
    pytester.makepyfile(test_three=THREE)
    result = pytester.runpytest_subprocess("--virt-compare", "--virt-envs=baremetal,container", "-k", "typo",
                                           "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*test_typo: invalid claim at column 1: unknown environment 'nosuch'; "
                                 "environments of this run: baremetal, container*"])


def test_deselected_tests_markers_are_not_read(pytester):
    pytester.makepyfile(test_three=THREE + """
@pytest.mark.virt(rounds=2.5, envs=["nope"])
def test_broken_marker():
    pass
""")
    result = pytester.runpytest_subprocess(*AA, "-k", "not typo and not broken and not both and not vm_only")
    # Before: exit 4 for test_typo / test_broken_marker although -k deselected them.
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED, result.stderr.str()


def test_named_environment_declared_in_the_ini_is_known():
    """A name the ini's virt_envs declares (control=baremetal) is an
    environment of the suite: --virt-envs without it skips its claims."""
    s = build_settings({"envs": "baremetal,container", "declared_envs": "baremetal,control=baremetal,container",
                        "cli_claims": ["control ~= baremetal +- 5%"],
                        "env_options": ["control: nice=0"]})
    assert s.claims == [] and [(c.text, r) for c, r in s.skipped_claims] == [
        ("control ~= baremetal +- 5%", "control: not in this run")]
    plan = plan_for_marker("t::a", (), {"claims": ["vm <= 3 * control"]}, s)
    assert plan.claims == []
    assert [r for _, r in plan.skipped_claims] == ["vm: not in this run; control: not in this run",
                                                   "control: not in this run"]
    plan = plan_for_marker("t::a", (), {"envs": ["control"]}, s)
    assert plan.envs == ["baremetal"] and plan.absent_envs == ["control"]
    assert [c.text for c, _ in plan.skipped_claims] == ["control ~= baremetal +- 5%"]
    with pytest.raises(ValueError, match="unknown environment 'ctrl'"):
        plan_for_marker("t::a", (), {"envs": ["ctrl"]}, s)
    with pytest.raises(ValueError, match=r"options for unknown environment\(s\) ctrl"):
        build_settings({"envs": "baremetal", "env_options": ["ctrl: nice=0"]})


# --------------------------------------------------------------------------
# point 3: output paths are checked before anything is measured

@pytest.mark.parametrize("option, make, words", [
    ("--virt-json=outdir", "dir", "*--virt-json: cannot write outdir: it is a directory*"),
    ("--virt-json=/proc/virt.json", None, "*--virt-json: cannot write /proc/virt.json: cannot create a file in /proc*"),
    ("--virt-json=afile/virt.json", "file", "*--virt-json: cannot write afile/virt.json: */afile is a file, not a directory*"),
    ("--virt-json=/dev/null", None, "*--virt-json: cannot write /dev/null: it exists and is not a regular file*"),
    ("--virt-report=outdir", "dir", "*--virt-report: cannot write outdir: it is a directory; name a file in it, e.g. outdir/virt-report.html*"),
])
def test_unwritable_output_is_a_usage_error_before_measuring(pytester, option, make, words):
    if make == "dir":
        (pytester.path / "outdir").mkdir()
    elif make == "file":
        (pytester.path / "afile").write_text("x")
    pytester.makepyfile("""
        import pytest
        @pytest.mark.virt
        def test_a():
            open("measured", "w").close()
    """)
    result = pytester.runpytest_subprocess(*AA, option)
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str()
    result.stderr.fnmatch_lines([words])
    assert not (pytester.path / "measured").exists()
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


def test_output_failing_at_the_end_keeps_the_table_and_the_other_outputs(pytester):
    """The JSON path becomes a directory during the run (the test makes
    it): the table is printed, the HTML report written, the failure named."""
    pytest.importorskip("matplotlib")
    pytester.makepyfile("""
        import os, pytest
        @pytest.mark.virt(claims=["control <= 100 * baremetal"])
        def test_a():
            os.makedirs("late.json", exist_ok=True)
    """)
    result = pytester.runpytest_subprocess(*AA, "--virt-json=late.json", "--virt-report=r.html")
    # Before: a traceback from pytest_sessionfinish, no table, no HTML.
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*test_a*baremetal*baseline*", "*control*",
                                 "*HTML report written to r.html*",
                                 "*virtoverhead: --virt-json: could not write late.json: Is a directory*"])
    assert (pytester.path / "r.html").stat().st_size > 1000
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


# --------------------------------------------------------------------------
# point 6 (plugin side): an aborted or empty run does not replace a measured one

def test_run_stopped_at_collection_keeps_the_earlier_json(pytester):
    pytester.makepyfile(test_a="""
        import pytest
        @pytest.mark.virt
        def test_a():
            pass
    """)
    assert pytester.runpytest_subprocess(*AA, "--virt-json=o.json").ret == 0
    before = (pytester.path / "o.json").read_text()
    assert json.loads(before)["aborted"] is False and json.loads(before)["exitstatus"] == 0
    # a marker mistake: usage error
    pytester.makepyfile(test_b="""
        import pytest
        @pytest.mark.virt(rounds=0)
        def test_b():
            pass
    """)
    result = pytester.runpytest_subprocess(*AA, "--virt-json=o.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert (pytester.path / "o.json").read_text() == before
    # rough edge: no misleading "no test ... was run" header before the usage error
    assert "no test marked" not in result.stdout.str() and "virtoverhead: comparison" not in result.stdout.str()
    # a collection error (exit 2, nothing measured)
    pytester.makepyfile(test_b="def test_b(:\n    pass\n")
    result = pytester.runpytest_subprocess(*AA, "--virt-json=o.json")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    assert (pytester.path / "o.json").read_text() == before
    result.stdout.fnmatch_lines(["*nothing was measured (exit status 2): o.json not written; the earlier o.json kept*"])


# --------------------------------------------------------------------------
# rough edges: marker rounds=, --virt-memory, --virt-envs=

@pytest.mark.parametrize("rounds, words", [
    ("2.5", "rounds: expected a whole number such as rounds=10, got 2.5 (float)"),
    ("True", "rounds: expected a whole number such as rounds=10, got True (bool)"),
    ("'3'", "rounds: expected a whole number such as rounds=10, got '3' (str)"),
    ("10**9", "rounds: 1000000000 rounds is more than --virt-max-rounds (200); raise --virt-max-rounds"),
])
def test_marker_rounds_must_be_a_whole_number_within_the_cap(pytester, rounds, words):
    pytester.makepyfile(f"""
        import pytest
        @pytest.mark.virt(rounds={rounds})
        def test_a():
            pass
    """)
    result = pytester.runpytest_subprocess(*AA, timeout=120)  # before: 10**9 rounds ran (a hang)
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str()
    result.stderr.fnmatch_lines([f"*test_a: @pytest.mark.virt: {words}*"])
    assert "no test marked" not in result.stdout.str()


def test_marker_rounds_units():
    s = build_settings({"envs": "baremetal,control=baremetal", "max_rounds": "300"})
    assert plan_for_marker("t::a", (), {"rounds": 250}, s).rounds == 250
    with pytest.raises(ValueError, match="more than --virt-max-rounds"):
        build_settings({"envs": "baremetal", "rounds": "500"})
    with pytest.raises(ValueError, match="--virt-max-rounds: at most"):
        build_settings({"envs": "baremetal", "max_rounds": str(10**9)})


def test_memory_is_capped_by_the_host():
    assert parse_memory("2g", host_mb=4096) == 2048
    with pytest.raises(ValueError, match=r"--virt-memory: 102400000 MiB is more than this host's memory \(4096 MiB\)"):
        parse_memory("100000g", host_mb=4096)


@pytest.mark.parametrize("args, words", [
    (["--virt-memory=100000g"], "*--virt-memory: 102400000 MiB is more than this host's memory*"),
    (["--virt-envs="], "*--virt-envs: empty list; e.g. --virt-envs=baremetal,container,vm*"),
    (["--virt-envs= , "], "*--virt-envs: empty list*"),
])
def test_option_rough_edges_are_usage_errors(pytester, args, words):
    pytester.makepyfile("def test_a(): pass")
    result = pytester.runpytest_subprocess("--virt-compare", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([words])
