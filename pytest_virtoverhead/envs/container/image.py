"""Image mode (option ``image``): the user's own local image and its Python.

Only the project and the plugin's package are mounted (read-only); a short
boot script run by the image's interpreter says in one line what the image
lacks (a recent enough Python, pytest) before the worker starts.
"""

from __future__ import annotations

import os
from typing import Any

from ...wire.envvars import SCRATCH_ENV
from ..base import EnvSpec, RunContext
from ..errors import EnvUnavailable
from .client import docker_sdk

#: Where the plugin's package is mounted in image mode (prepended to PYTHONPATH).
PLUGIN_MOUNT = "/opt/pytest-virtoverhead"
MIN_PYTHON = (3, 10)
MISSING_MARK = "virtoverhead-missing:"

#: Run by the image's Python before the worker, in image mode: says in one
#: line what the image lacks. Kept Python 2 compatible so that even a too-old
#: interpreter reports instead of failing on syntax.
IMAGE_BOOT = r"""
import os, sys
mark = %(mark)r
if sys.version_info < %(min)r:
    sys.stderr.write("%%s Python >= %(min_text)s (the image's %%s is %%s)\n" %% (mark, sys.executable, sys.version.split()[0]))
    sys.exit(3)
try:
    import pytest
except Exception as exc:
    sys.stderr.write("%%s pytest, which the image's %%s %%s cannot import (%%s)\n" %% (mark, sys.executable, sys.version.split()[0], exc))
    sys.exit(3)
scratch = os.environ.get(%(scratch_env)r)
if scratch:
    try:
        os.makedirs(scratch, exist_ok=True)
        if not os.access(scratch, os.W_OK):
            raise OSError("not writable")
    except OSError:
        import tempfile
        os.environ[%(scratch_env)r] = tempfile.mkdtemp(prefix="virtoverhead-scratch-")
import runpy
sys.argv = ["pytest_virtoverhead.guest.worker", "--cwd", %(cwd)r]
runpy.run_module("pytest_virtoverhead.guest.worker", run_name="__main__", alter_sys=True)
"""


def image_setup(client, spec: EnvSpec, ctx: RunContext) -> tuple[Any, list[str], dict[str, dict[str, str]],
                                                                  dict[str, str]]:
    """(image, command, bind mounts, extra environment) of image mode."""
    docker = docker_sdk()
    ref = spec.options["image"]
    try:
        image = client.images.get(ref)
    except docker.errors.ImageNotFound:
        raise EnvUnavailable(
            f"image {ref!r} is not in the local Docker image store (no image is ever pulled): "
            "build it with `docker build` or load it with `docker load`"
        ) from None
    python = spec.options.get("python") or "python3"
    package = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # pytest_virtoverhead/
    binds = {
        os.path.realpath(ctx.rootdir): {"bind": os.path.realpath(ctx.rootdir), "mode": "ro"},
        package: {"bind": f"{PLUGIN_MOUNT}/pytest_virtoverhead", "mode": "ro"},
    }
    image_env = dict(
        item.split("=", 1) for item in (image.attrs.get("Config") or {}).get("Env") or [] if "=" in item
    )
    pythonpath = PLUGIN_MOUNT + (":" + image_env["PYTHONPATH"] if image_env.get("PYTHONPATH") else "")
    boot = IMAGE_BOOT % {
        "mark": MISSING_MARK, "min": MIN_PYTHON, "min_text": ".".join(map(str, MIN_PYTHON)),
        "scratch_env": SCRATCH_ENV, "cwd": os.path.realpath(ctx.rootdir),
    }
    return image, [python, "-c", boot], binds, {"PYTHONPATH": pythonpath}


def missing(stderr: str) -> str | None:
    """What the image lacks, as the boot script said on ``stderr``, if it did."""
    for line in stderr.splitlines():
        if line.startswith(MISSING_MARK):
            return line[len(MISSING_MARK):].strip()
    return None
