"""The processes a worker process starts end with it.

A test may start processes that outlive it: a server it forgets to stop, a
daemon that double-forks and so leaves its parent. Linux re-parents an
orphan to the nearest ancestor that declared itself a *child subreaper*
(``PR_SET_CHILD_SUBREAPER``), else to init. Every worker process declares
itself one (:func:`become_subreaper`), so whatever a test starts stays in
the worker's tree, whatever it does, and is ended with it
(:func:`end_descendants`, at the worker's exit). Processes started in a
worker process carry :data:`TAG_VAR` in their environment, so that the
environment's worker can end those a killed worker process left behind
(:func:`end_orphans`); the host ends a killed worker's whole tree
(:func:`kill_tree`).

Linux only (elsewhere each function does nothing); standard library only:
this runs inside every environment.
"""

from __future__ import annotations

import os
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Iterable

PR_SET_CHILD_SUBREAPER = 36
#: In the environment of a worker process started by the environment's
#: worker, and so of everything it starts: what makes an orphan
#: recognisable as left behind by a worker process.
TAG_VAR = "VIRTOVERHEAD_WORKER_PROCESS"
LINUX = sys.platform.startswith("linux")


def become_subreaper() -> bool:
    """Declare this process a child subreaper; False where it cannot be
    (not Linux, or an image's interpreter whose ctypes cannot load: a
    minimal image without libffi)."""
    if not LINUX:
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError, ImportError):
        return False


def _stat(pid: int) -> tuple[int, str] | None:
    """(parent pid, state letter) of ``pid``; None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rfind(b")") + 2:].split()
    return (int(fields[1]), fields[0].decode("ascii", "replace")) if len(fields) >= 2 else None


def children(pid: int) -> list[int]:
    """The children of ``pid``: from its threads' ``children`` files (the
    cost of the subtree, not of every process of the host), else from a
    scan of /proc."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
        out: list[int] = []
        for tid in tids:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out += [int(x) for x in f.read().split()]
        return out
    except FileNotFoundError:
        if not os.path.exists(f"/proc/{pid}"):
            return []
    except (OSError, ValueError):
        pass
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = _stat(int(name))
            if st is not None and st[0] == pid:
                found.append(int(name))
    return found


def descendants(root: int, skip: Iterable[int] = ()) -> list[int]:
    """The processes below ``root`` (not ``root``), parents first; the
    subtrees of ``skip`` left out."""
    skipped = set(skip)
    out, todo = [], children(root)
    while todo:
        pid = todo.pop(0)
        if pid in skipped or pid == root or pid in out:
            continue
        out.append(pid)
        todo.extend(children(pid))
    return out


def live(pids: Iterable[int]) -> list[int]:
    """Those of ``pids`` that run (not ended, not zombies)."""
    return [p for p in pids if (st := _stat(p)) is not None and st[1] != "Z"]


def tagged(pid: int) -> bool:
    """Whether ``pid`` carries :data:`TAG_VAR` in its environment."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            env = f.read()
    except OSError:
        return False
    return any(entry.startswith(TAG_VAR.encode() + b"=") for entry in env.split(b"\0"))


def _end(find: Callable[[], list[int]], rounds: int = 100) -> int:
    """SIGKILL what ``find`` returns until it returns nothing (a process
    forking meanwhile is caught at the next round; its children are
    re-parented to this subreaper), reaping this process's own children
    among them. Returns how many were ended."""
    import signal  # here: enum-based, a cost at every worker start otherwise

    ended: set[int] = set()
    for _ in range(rounds):
        pids = [p for p in find() if p != os.getpid()]
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                ended.add(pid)
            except OSError:
                pass
        time.sleep(0.002)
        reap(pids)
    return len(ended)


def reap(pids: Iterable[int]) -> None:
    """Collect the exit status of those of ``pids`` that are this
    process's children and have ended (never blocks)."""
    for pid in pids:
        try:
            os.waitpid(pid, os.WNOHANG)
        except OSError:
            pass


def end_descendants(keep: Iterable[int] = ()) -> int:
    """End every process below this one but the subtrees of ``keep``."""
    if not LINUX:
        return 0
    me, kept = os.getpid(), list(keep)

    def find() -> list[int]:
        below = descendants(me, kept)
        reap(p for p in below if (st := _stat(p)) is not None and st == (me, "Z"))
        return live(below)
    return _end(find)


def end_new(before: Iterable[int]) -> int:
    """End the processes below this one that were not there ``before``
    (what a test's run left running), and what they started."""
    if not LINUX:
        return 0
    old = set(before)
    me = os.getpid()
    return _end(lambda: [p for p in live(descendants(me)) if p not in old])


def end_orphans(keep: Iterable[int]) -> int:
    """End the processes re-parented to this one (the environment's
    worker) from a worker process that ended (they carry
    :data:`TAG_VAR`), and what they started; ``keep``: the live worker
    processes. Also reaps this process's ended children outside ``keep``."""
    if not LINUX:
        return 0
    me, kept = os.getpid(), set(keep)

    def find() -> list[int]:
        mine = [p for p in children(me) if p not in kept]
        reap(p for p in mine if (st := _stat(p)) is not None and st[1] == "Z")
        roots = [p for p in live(mine) if tagged(p)]
        return roots + [d for r in roots for d in descendants(r)]
    return _end(find)


def kill_tree(root: int) -> int:
    """SIGKILL ``root`` and every process below it, stopping them first so
    none forks out of the walk (host side: a worker that will not stop)."""
    if not LINUX:
        return 0
    import signal

    seen: set[int] = set()
    for _ in range(20):
        new = [p for p in [root, *descendants(root)] if p not in seen]
        if not new:
            break
        for pid in new:
            try:
                os.kill(pid, signal.SIGSTOP)
            except OSError:
                pass
        seen.update(new)
    for pid in seen:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    return len(seen)
