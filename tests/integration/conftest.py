"""Fixtures shared by the integration tests."""

import pytest
from envrequire import unavailable

from pytest_virtoverhead.envs import EnvUnavailable


@pytest.fixture(scope="module")
def docker_client(pytestconfig):
    """A docker SDK client to the local daemon; skips (fails when the run
    requires containers) without one."""
    from pytest_virtoverhead.envs.container.client import connect

    try:
        client = connect()
    except EnvUnavailable as exc:
        unavailable(pytestconfig, "container", str(exc))
    yield client
    client.close()
