"""Shared settings of the test suite.

Every pytester run in this suite is its own session, and each session
starts its worker processes anew (``--virt-processes``, default 4 per
environment, about a second each here). Runs that do not test the process
rotation itself use one (the rounds are then the units), set through PYTEST_ADDOPTS (after pytester has
cleared it) so the command line of a test still wins; tests of the rotation
pass ``--virt-processes`` explicitly.
"""

import pytest


@pytest.fixture(autouse=True)
def _two_worker_processes(request, monkeypatch):
    if "pytester" in request.fixturenames:
        request.getfixturevalue("pytester")
    monkeypatch.setenv("PYTEST_ADDOPTS", "--virt-processes=1")
