"""A compared test's own pytest reports reach the host whole (pytest-xdist's
way): a test that prints and then fails in an environment shows, in the
host's terminal report, its captured output and its structured traceback,
drawn with the host's --tb as pytest would draw them without the plugin;
its warnings reach the warnings summary, its user properties junitxml.

The container case skips without Docker, unless the run requires the
container kind (--virt-require, VIRTOVERHEAD_REQUIRE) or runs in CI.
"""

import os

import pytest

FAILING = """
import os
import warnings
import pytest

@pytest.mark.virt
def test_boom(record_property):
    record_property("seen", "inside")
    print("hello from inside")
    # Fails in the environment under test only (and without the plugin).
    value = 41 if os.environ.get("VIRTOVERHEAD_ENV", "inside") == "inside" else 42
    assert value == 42

@pytest.mark.virt
@pytest.mark.xfail(reason="known bug 7")
def test_xfails():
    assert False

@pytest.mark.virt
def test_skips():
    if os.environ.get("VIRTOVERHEAD_ENV") == "inside":
        pytest.skip("not here")

@pytest.mark.virt
def test_passes(record_property):
    record_property("seen", "passed")
    print("all good")
    warnings.warn("careful inside", UserWarning)
"""


def _required(config) -> bool:
    if os.environ.get("CI"):
        return True
    wanted = ",".join([os.environ.get("VIRTOVERHEAD_REQUIRE", ""), os.environ.get("VIRT_REQUIRE", ""),
                       *(config.getoption("virt_require", None) or [])])
    return bool({"container", "all"} & {w.strip() for w in wanted.split(",")})


def _failures(text: str) -> list[str]:
    """The FAILURES part of a terminal report, up to its summary."""
    lines = text.splitlines()
    first = next(i for i, line in enumerate(lines) if "= FAILURES =" in line)
    last = next(i for i, line in enumerate(lines) if i > first and line.startswith("="))
    return lines[first:last]


def _here(line: str, pytester) -> str:
    """A line with the test file's path in the environment made the host's."""
    marker = "/test_inside.py:"
    if marker in line and not line.startswith(str(pytester.path)):
        return str(pytester.path) + marker + line.split(marker, 1)[1]
    return line


@pytest.mark.parametrize("kind", ["baremetal", "container"])
@pytest.mark.parametrize("tb", ["short", "line"])
def test_captured_output_and_traceback_of_a_test_failing_in_an_environment(pytester, pytestconfig, kind, tb):
    pytester.makepyfile(test_inside=FAILING)
    plain = pytester.runpytest_subprocess("-p", "no:cacheprovider", f"--tb={tb}", "-rA", "-k", "boom")
    compared = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--virt-compare", f"--virt-envs=baremetal,inside={kind}",
        "--virt-rounds=2", "--virt-warmup=0", "--virt-seed=1", f"--tb={tb}", "-rA", "--junitxml=junit.xml")
    out = compared.stdout.str()
    if kind != "baremetal" and "no environment to compare with: inside" in out and not _required(pytestconfig):
        pytest.skip(next(line for line in out.splitlines() if "no environment to compare with" in line))
    compared.assert_outcomes(failed=1, xfailed=1, passed=1, skipped=1)
    expected = _failures(plain.stdout.str())
    got = _failures(out)
    # Which environment: a line before the traceback.
    note = "the test failed in environment 'inside'"
    if tb == "short":
        lines = [note, "*test_inside.py:*: in test_boom", "    assert value == 42", "E   assert 41 == 42",
                 "*Captured stdout call*", "hello from inside"]
    else:
        lines = [note, "E   assert 41 == 42", "*Captured stdout call*", "hello from inside",
                 "*test_inside.py:*: assert 41 == 42"]
    compared.stdout.fnmatch_lines(lines)
    # Line for line as without the plugin, apart from the note and the blank
    # line before it (and the test file's path in the environment).
    at = got.index(note)
    assert got[at - 1] == ""
    assert [_here(line, pytester) for line in got[:at - 1] + got[at + 1:]] == expected
    compared.stdout.fnmatch_lines(["*Captured stdout call*", "all good"])  # -rA: the passing test's output
    compared.stdout.fnmatch_lines(["XFAIL test_inside.py::test_xfails - known bug 7"])
    compared.stdout.fnmatch_lines(["SKIPPED [[]1[]] test_inside.py:*: skipped in environment 'inside': not here"])
    compared.stdout.fnmatch_lines(["*warnings summary*", "test_inside.py::test_passes",
                                   "*test_inside.py:*: UserWarning: careful inside"])
    junit = (pytester.path / "junit.xml").read_text()
    assert '<property name="seen" value="inside" />' in junit
    assert '<property name="seen" value="passed" />' in junit and 'name="virt_ratio_inside"' in junit


def test_worker_args_carry_what_shapes_a_report(pytester):
    from pytest_virtoverhead.wire.testreports import worker_args

    config = pytester.parseconfig("--tb=short", "-l", "-vv")
    assert worker_args(config) == ["--tb=short", "--showlocals", "--verbosity=2"]
    assert worker_args(pytester.parseconfig()) == ["--tb=auto"]
