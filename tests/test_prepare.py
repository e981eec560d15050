"""Worker processes started side by side (``prepare``): every process gets
its pytest session, lands on the measuring CPUs when it started on spare
ones, and stays where its parent runs when there are none (a VM guest,
whose CPU numbers are not the host's)."""

import os

import pytest

from pytest_virtoverhead.guest.children import Children

TEST = "def test_a():\n    pass\n"


@pytest.fixture
def children(tmp_path, monkeypatch):
    (tmp_path / "test_p.py").write_text(TEST)
    monkeypatch.chdir(tmp_path)
    kids = Children()
    yield kids, str(tmp_path)
    kids.close()


def _session(root):
    return {"nodeids": ["test_p.py::test_a"], "args": ["-p", "no:cacheprovider"], "rootdir": root}


def _affinity(child):
    return sorted(os.sched_getaffinity(child.pid))


def test_prepare_opens_a_session_in_every_process(children):
    kids, root = children
    out = kids.prepare({"slots": {"1": {"PYTHONHASHSEED": "1"}, "2": {"PYTHONHASHSEED": "2"}},
                        "session": _session(root)})
    assert set(out["slots"]) == {"1", "2"}
    assert all("pid" in v and "error" not in v for v in out["slots"].values()), out
    for slot in (1, 2):
        reply = kids.forward({"id": slot, "op": "item", "proc": slot, "nodeid": "test_p.py::test_a"})
        assert reply["ok"] and reply["result"]["outcome"] == "passed"


def test_without_start_cpus_the_pin_is_ignored(children):
    """A host CPU number means nothing inside a guest: with no CPUs to start
    on, a child is never pinned (before: it failed to move onto host CPU 1
    inside a one-CPU guest and its session ended with exit code 3)."""
    kids, root = children
    out = kids.prepare({"slots": {"1": {}}, "session": _session(root), "pin_cpus": [4095]})
    assert "error" not in out["slots"]["1"], out
    assert _affinity(kids.by_slot[1]) == sorted(os.sched_getaffinity(0))


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs")
def test_started_on_spare_cpus_then_pinned(children):
    kids, root = children
    cpus = sorted(os.sched_getaffinity(0))
    out = kids.prepare({"slots": {"1": {}, "2": {}}, "session": _session(root), "start_cpus": cpus,
                        "pin_cpus": [cpus[-1]]})
    assert all("error" not in v for v in out["slots"].values()), out
    assert [_affinity(kids.by_slot[s]) for s in (1, 2)] == [[cpus[-1]], [cpus[-1]]]
