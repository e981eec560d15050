"""Whether this run requires an environment kind, and what a test does
when that kind is unavailable here: fail when required, skip otherwise.

Required: named in ``--virt-require`` or in ``VIRT_REQUIRE`` /
``VIRTOVERHEAD_REQUIRE`` (comma-separated kinds, or ``all``).

Also :func:`aa_args` and :func:`read_json`, tests/virthelp.py's helpers
imported when called: the integration modules are also loaded inside
environments (functions by reference), where this directory is on the path
but tests/ is not, so nothing here imports virthelp at import time."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def required(config: pytest.Config, kind: str) -> bool:
    words: set[str] = set()
    for value in (os.environ.get("VIRT_REQUIRE", ""), os.environ.get("VIRTOVERHEAD_REQUIRE", "")):
        words.update(w.strip() for w in value.split(","))
    try:
        opt = config.getoption("virt_require") or ""
    except ValueError:  # the plugin is not loaded
        opt = ""
    if isinstance(opt, (list, tuple)):
        opt = ",".join(opt)
    words.update(w.strip() for w in str(opt).split(","))
    return kind in words or "all" in words


def unavailable(config: pytest.Config, kind: str, reason: str) -> NoReturn:
    """Fail (``kind`` is required) or skip, with the first line of ``reason``."""
    if required(config, kind):
        pytest.fail(f"{kind} environment required but unavailable: {reason}", pytrace=False)
    pytest.skip(f"{kind}: {reason.splitlines()[0]}")


def aa_args(*args, **kwargs):
    """virthelp.aa_args, imported when called (see the module's docstring)."""
    from virthelp import aa_args as helper

    return helper(*args, **kwargs)


def read_json(*args, **kwargs):
    """virthelp.read_json, imported when called (see the module's docstring)."""
    from virthelp import read_json as helper

    return helper(*args, **kwargs)
