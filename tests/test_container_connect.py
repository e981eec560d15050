"""What the container environment says when a Docker daemon refuses this user
(no daemon at all: tests/integration/test_container.py::test_no_daemon_says_how_to_start_one)."""

from __future__ import annotations

import pytest

docker = pytest.importorskip("docker")

from pytest_virtoverhead.envs.container.client import connect  # noqa: E402
from pytest_virtoverhead.envs.errors import EnvUnavailable  # noqa: E402


def _refusing(message):
    def client(*_args, **_kwargs):
        raise docker.errors.DockerException(message)
    return client


def test_a_socket_this_user_may_not_open_says_so(monkeypatch):
    # what docker-py raised for a user outside the docker group (as root the
    # kernel lets every user in, so the SDK's answer is replayed here)
    monkeypatch.setattr(docker, "DockerClient", _refusing(
        "Error while fetching server API version: ('Connection aborted.', "
        "PermissionError(13, 'Permission denied'))"))
    with pytest.raises(EnvUnavailable) as err:
        connect("unix:///var/run/docker.sock")
    text = str(err.value)
    assert text.startswith("the Docker daemon at unix:///var/run/docker.sock does not let this user in")
    assert "add your user to the `docker` group" in text and "no Docker daemon" not in text

