"""The worker reads its command line without argparse (a lean start); it
must read it exactly as argparse would, and leave the rest to argparse."""

import pytest

from pytest_virtoverhead.guest import workerargs as worker


@pytest.mark.parametrize("argv", [
    [],
    ["--device", "/dev/ttyS1", "--cwd", "/work"],
    ["--connect=/tmp/s.sock", "--ready", "READY"],
    ["--ready="],
    ["--cwd", "/a", "--cwd", "/b"],
    ["--dev", "/dev/ttyS1"],  # an abbreviation: argparse's job
])
def test_same_reading_as_argparse(argv):
    expected = vars(worker._argparser().parse_args(argv))
    assert vars(worker.parse_args(argv)) == expected


@pytest.mark.parametrize("argv", [["--bogus"], ["--device", "/d", "--connect", "/s"], ["--cwd"], ["x"]])
def test_mistakes_are_explained_by_argparse(argv, capsys):
    with pytest.raises(SystemExit) as info:
        worker.parse_args(argv)
    assert info.value.code == 2
    assert "usage: python -m pytest_virtoverhead.guest.worker" in capsys.readouterr().err


def test_worker_start_imports_little():
    import subprocess
    import sys

    code = ("import sys, pytest_virtoverhead.guest.worker as w; "
            "print(sorted(m for m in ('argparse', 'platform', 'socket', 'traceback', 'typing', "
            "'dataclasses', 'pytest_virtoverhead.guest.measure') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-S", "-c", f"import sys; sys.path[:0] = {sys.path!r}; {code}"],
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_children_module_leaves_subprocess_to_the_first_spawn():
    """The worker imports children.py at every start; subprocess (~0.15-0.25 s
    of a TCG guest's start) is imported only when a child is spawned."""
    import subprocess
    import sys

    code = "import sys, pytest_virtoverhead.guest.children; print('subprocess' in sys.modules)"
    out = subprocess.run([sys.executable, "-S", "-c", f"import sys; sys.path[:0] = {sys.path!r}; {code}"],
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"
