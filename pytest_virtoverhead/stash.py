"""The keys under which the plugin keeps its state on pytest's stashes, and
the names it gives pytest (marker, environment fixtures).

Imported by the entry module: pytest only.
"""

from __future__ import annotations

from typing import Any

import pytest

STATE_KEY = pytest.StashKey[Any]()
ITEM_KEY = pytest.StashKey[Any]()
MARKER = "virt"
#: The fixtures that hand out environments (defined in plugin.py).
ENV_FIXTURES = frozenset({"baremetal", "container", "vm", "virt_envs"})
