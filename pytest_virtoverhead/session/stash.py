"""The key under which the plugin keeps a compared test's plan on its item,
and the names it gives pytest (the session plugin, marker, environment
fixtures).

Imported by the entry module: pytest only.
"""

from __future__ import annotations

from typing import Any

import pytest

#: The name the session (:class:`.session.VirtSession`) is registered under.
SESSION_PLUGIN = "virtoverhead-session"
#: A compared test's plan (config.ItemPlan) on its item.
ITEM_KEY = pytest.StashKey[Any]()
MARKER = "virt"
#: The fixtures that hand out environments (defined in plugin.py).
ENV_FIXTURES = frozenset({"baremetal", "container", "vm", "virt_envs"})
