"""Helpers the test files share, imported by name (``from virthelp import
aa_args``). They live here rather than in conftest.py: tests/ and
tests/integration/ each have a conftest.py, both imported as ``conftest``,
so a test module cannot name one of them reliably."""

import json
from typing import Any


def aa_args(*extra: str, rounds: int | None = None, seed: int | None = None) -> list[str]:
    """The command line of an A/A comparison: the host's baremetal
    environment against a second baremetal one named ``control``, so every
    ratio is near 1 and no container or VM is needed. ``rounds`` and
    ``seed`` as each test chose them (left out when None); the cache
    provider off; then ``extra``."""
    args = ["--virt-compare", "--virt-envs=baremetal,control=baremetal"]
    if rounds is not None:
        args.append(f"--virt-rounds={rounds}")
    if seed is not None:
        args.append(f"--virt-seed={seed}")
    return [*args, "-p", "no:cacheprovider", *extra]


def read_json(pytester: Any, name: str) -> Any:
    """The JSON file ``name`` a pytester run wrote in its directory."""
    return json.loads((pytester.path / name).read_text())


class _NoPool:
    """The pool a :class:`Comparator` only asks for metadata while judging."""

    def metadata(self) -> dict:
        return {}


def judging_comparator(confidence: float = 0.95) -> Any:
    """A round runner that only judges (``evaluate``), at ``confidence``."""
    from pytest_virtoverhead.session.config import Settings
    from pytest_virtoverhead.session.rounds import Comparator

    return Comparator(Settings(confidence=confidence), _NoPool(), ())


def evaluated(claims: list[str], samples: dict[str, list[float]], processes: int = 4,
              confidence: float = 0.95) -> Any:
    """The ItemResult of ``t.py::test_a`` made of ``samples`` (seconds per
    environment, baseline ``baremetal``), its ``claims`` judged."""
    from pytest_virtoverhead.judge.claims import parse_claim
    from pytest_virtoverhead.results import ItemResult
    from pytest_virtoverhead.session.judging import Claims, judge

    res = ItemResult.from_samples("t.py::test_a", list(samples), "baremetal", samples, processes=processes)
    parsed = [parse_claim(c) for c in claims]
    res.claims = list(judge(res, Claims(parsed), judging_comparator(confidence).evaluate(res, parsed)))
    return res
