"""The ``container`` kind: the worker in a Docker container, through the SDK.

Two modes:

* **mirror** (default): a locally built, empty image (``docker import`` of a
  tiny tar holding only the host's top-level symlinks and two empty
  directories) plus read-only bind mounts of the host's ``/usr``, ``/etc``
  (and ``/bin``, ``/lib``... where they are real directories), the
  interpreter prefix, the virtualenv and the project. The container runs the
  host's own interpreter on the host's own files: what differs from
  baremetal is only the isolation (namespaces, cgroups, seccomp, overlayfs).
* **image** (option ``image``): the user's own image and its Python; only the
  project and the plugin's package are mounted (read-only).

One long-lived container per environment per session. The host talks to the
worker over the container's attached stdin/stdout (see
:mod:`.container_stream`); the container is created with ``StdinOnce`` and
``AutoRemove``, so if the host process dies the worker reads EOF, exits and
the daemon removes the container even before a reaper runs.

The docker SDK is imported inside this module's functions only when a
container is asked for; the plugin loads without it.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import socket
import tarfile
import threading
import time
from typing import Any

from .. import footprint
from .base import (
    LABEL_PREFIX,
    OWNER_LABEL,
    SCRATCH_ENV,
    SESSION_LABEL,
    Backend,
    EnvError,
    EnvUnavailable,
    RunContext,
    Transport,
    owner_alive,
)
from .container_stream import AttachTransport

IMAGE_REPO = "pytest-virtoverhead/mirror"
IMAGE_LABEL = f"{LABEL_PREFIX}.image"
ENV_LABEL = f"{LABEL_PREFIX}.env"
#: Where the scratch directory is inside the container.
SCRATCH_PATH = "/scratch"
#: Where the plugin's package is mounted in image mode (prepended to PYTHONPATH).
PLUGIN_MOUNT = "/opt/pytest-virtoverhead"
#: Top-level host directories a mirror exposes (symlinks are copied into the
#: image as symlinks, real directories are bind-mounted read-only).
MIRROR_TOP = ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc")
#: Host paths never bind-mounted (the runtime provides its own).
NEVER_MOUNT = ("/proc", "/sys", "/dev", "/run", "/var/run")
#: Environment variables carried from the host into a mirror container.
PASS_ENV = ("PATH", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "TZ", "PYTHONPATH", "PYTHONHASHSEED",
            "PYTHONWARNINGS", "VIRTUAL_ENV", "PYTHONDONTWRITEBYTECODE")
HOW_TO_START = "start one with `sudo dockerd --bridge=none --iptables=false` or run scripts/provision.sh"
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
sys.argv = ["pytest_virtoverhead.worker", "--cwd", %(cwd)r]
runpy.run_module("pytest_virtoverhead.worker", run_name="__main__", alter_sys=True)
"""


def _docker():
    try:
        import docker  # imported lazily on purpose
    except ImportError:
        raise EnvUnavailable(
            "the container environment needs the docker SDK: pip install docker "
            "(or pip install 'pytest-virtoverhead[container]')"
        ) from None
    return docker


def _short(exc: BaseException) -> str:
    """One line of an exception, without the SDK's nesting noise."""
    text = getattr(exc, "explanation", None) or str(exc)
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    text = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    text = re.sub(r"\s+", " ", text)
    return text[:300]


def _gone_errors() -> tuple[type[BaseException], ...]:
    """What the SDK raises when the daemon is not there (any more): the
    connection is refused, reset or times out. Not API errors."""
    import requests  # a dependency of the docker SDK

    return (requests.exceptions.ConnectionError, requests.exceptions.Timeout, ConnectionError)


def _gone_reason(exc: BaseException) -> str:
    """'Connection refused' rather than requests' nested tuple of reprs."""
    seen: list[BaseException] = [exc]
    while seen:
        e = seen.pop(0)
        if isinstance(e, OSError) and e.strerror:
            return e.strerror
        seen.extend(a for a in e.args if isinstance(a, BaseException))
        if e.__context__ is not None and len(seen) < 10:
            seen.append(e.__context__)
    return _short(exc)


def connect(url: str | None = None, timeout: float = 60.0):
    """A DockerClient that has answered a ping, or EnvUnavailable."""
    docker = _docker()
    where = url or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    try:
        client = docker.DockerClient(base_url=url, timeout=int(timeout)) if url else docker.from_env(timeout=int(timeout))
        client.ping()
    except Exception as exc:  # noqa: BLE001 - DockerException, requests errors, OSError...
        reason = _short(exc)
        if "ermission denied" in reason:
            hint = "run as root or add your user to the `docker` group"
        else:
            hint = HOW_TO_START
        raise EnvUnavailable(f"no Docker daemon at {where} ({reason}): {hint}") from None
    return client


def mirror_layout() -> list[tuple[str, str]]:
    """(name, symlink target) of the host's top-level symlinks a mirror copies."""
    out = []
    for name in MIRROR_TOP:
        path = "/" + name
        if os.path.islink(path):
            out.append((name, os.readlink(path)))
    return out


def mirror_tar() -> bytes:
    """The mirror image's only layer: host top-level symlinks, /tmp and /scratch.

    Deterministic (fixed mtimes and owners) so its hash names the image.
    """
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        for name, target in mirror_layout():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tf.addfile(info)
        for name in ("tmp", SCRATCH_PATH.strip("/")):
            info = tarfile.TarInfo(name)
            info.type = tarfile.DIRTYPE
            info.mode = 0o1777
            tf.addfile(info)
    return buf.getvalue()


def ensure_mirror_image(client) -> Any:
    """The cached mirror image (built here, never pulled)."""
    data = mirror_tar()
    tag = hashlib.sha256(data).hexdigest()[:12]
    ref = f"{IMAGE_REPO}:{tag}"
    docker = _docker()
    try:
        return client.images.get(ref)
    except docker.errors.ImageNotFound:
        pass
    client.api.import_image_from_data(
        data, repository=IMAGE_REPO, tag=tag,
        changes=[f'LABEL {IMAGE_LABEL}="mirror"', "WORKDIR /"],
    )
    return client.images.get(ref)


def _covered(path: str, by: list[str]) -> bool:
    return any(path == p or path.startswith(p.rstrip("/") + "/") for p in by)


def mirror_binds(ctx: RunContext) -> dict[str, dict[str, str]]:
    """Read-only bind mounts that let the host's interpreter run inside."""
    roots: list[str] = []
    for name in MIRROR_TOP:
        path = "/" + name
        if os.path.isdir(path) and not os.path.islink(path):
            roots.append(path)
    extra: list[str] = []
    for path in ctx.host_paths():
        if path == "/":
            raise EnvUnavailable(
                "a container mirror cannot bind-mount / (the project, virtualenv or interpreter "
                "lives at the root of the file system); use the option image= instead"
            )
        if _covered(path, list(NEVER_MOUNT)) or _covered(path, roots) or _covered(path, extra):
            continue
        extra.append(path)
    return {p: {"bind": p, "mode": "ro"} for p in roots + extra}


class ContainerBackend(Backend):
    kind = "container"
    option_help = {
        "image": "run the worker in this local image with its own Python (default: mirror the host "
                 "read-only in a locally built empty image)",
        "python": "interpreter inside the image, in image mode (default python3)",
        "runtime": "OCI runtime registered with dockerd, e.g. runc, crun, runsc (default: the daemon's default)",
        "scratch": "where file I/O workloads write: layer (the container's overlayfs writable layer, "
                   "default), volume (a labelled docker volume removed at stop) or an absolute host path "
                   "(bind-mounted)",
        "docker_url": "Docker daemon address (default: DOCKER_HOST or unix:///var/run/docker.sock)",
        "user": "uid[:gid] the worker runs as (default: the host's uid:gid in mirror mode, the image's user "
                "in image mode)",
        "seccomp": "default (Docker's profile) or unconfined, to measure what seccomp filtering costs",
    }

    def __init__(self, spec, ctx):
        super().__init__(spec, ctx)
        self._client = None
        self._info: dict[str, Any] = {}
        self._image = None
        self._container_id: str | None = None
        self._container_name: str | None = None
        self._volume: str | None = None
        self._transport: AttachTransport | None = None
        self._last_stderr = ""
        self._last_state: dict[str, Any] = {}
        self._meta: dict[str, Any] = {}
        self._stop_lock = threading.Lock()
        self._stopping: int | None = None
        #: Name of a container being created: a Ctrl-C between the create
        #: call and its answer must not leave it behind.
        self._pending_name: str | None = None
        self._last_container = ""  # "name (id)" of the last container, for diagnostics
        self._started_at = 0.0
        self._daemon_gone = ""  # why the daemon did not answer at stop, if it did not
        self._check()

    # -- options ------------------------------------------------------------

    def _check(self) -> None:
        self.check_options(self.spec.options)
        opts = self.spec.options
        scratch = opts.get("scratch", "layer") or "layer"
        if scratch not in ("layer", "volume") and not os.path.isabs(scratch):
            raise ValueError(f"option scratch={scratch!r} of environment {self.spec.name!r}: "
                             "expected layer, volume or an absolute host path")
        seccomp = opts.get("seccomp", "default") or "default"
        if seccomp not in ("default", "unconfined"):
            raise ValueError(f"option seccomp={seccomp!r} of environment {self.spec.name!r}: "
                             "expected default or unconfined")
        if opts.get("python") and not opts.get("image"):
            raise ValueError(f"option python= of environment {self.spec.name!r} needs image=: "
                             "a mirror runs the host's own interpreter")

    @property
    def mode(self) -> str:
        return "image" if self.spec.options.get("image") else "mirror"

    @property
    def scratch_kind(self) -> str:
        scratch = self.spec.options.get("scratch", "layer") or "layer"
        return scratch if scratch in ("layer", "volume") else "bind"

    # -- life cycle -----------------------------------------------------------

    def client(self):
        if self._client is None:
            self._client = connect(self.spec.options.get("docker_url"), timeout=max(60.0, self.ctx.startup_timeout))
        return self._client

    @property
    def where(self) -> str:
        return self.spec.options.get("docker_url") or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"

    def _runtime(self) -> str | None:
        wanted = self.spec.options.get("runtime")
        if not wanted:
            return None
        runtimes = sorted(self._info.get("Runtimes") or {})
        if wanted not in runtimes:
            path = f"/usr/bin/{wanted}"
            raise EnvUnavailable(
                f"the Docker daemon has no runtime {wanted!r} (it has: {', '.join(runtimes) or 'none'}); "
                f"register it in /etc/docker/daemon.json as "
                f"{{\"runtimes\": {{\"{wanted}\": {{\"path\": \"{path}\"}}}}}} and reload dockerd "
                f"(kill -HUP its pid), or start dockerd with --add-runtime {wanted}={path} "
                f"(scripts/provision.sh registers crun)"
            )
        return wanted

    def _labels(self) -> dict[str, str]:
        return {**self.ctx.labels(), ENV_LABEL: self.spec.name}

    def _resource_name(self, what: str) -> str:
        safe = re.sub(r"[^A-Za-z0-9_.-]", "-", f"{self.ctx.session_id}-{self.spec.name}")
        return f"virtoverhead-{safe}-{what}-{os.getpid()}-{id(self) & 0xFFFF:x}"

    def _image_mode_setup(self, client) -> tuple[Any, list[str], dict[str, dict[str, str]], dict[str, str]]:
        docker = _docker()
        ref = self.spec.options["image"]
        try:
            image = client.images.get(ref)
        except docker.errors.ImageNotFound:
            raise EnvUnavailable(
                f"image {ref!r} is not in the local Docker image store (no image is ever pulled): "
                "build it with `docker build` or load it with `docker load`"
            ) from None
        python = self.spec.options.get("python") or "python3"
        pkg_dir = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        pkg = os.path.join(pkg_dir, "pytest_virtoverhead")
        binds = {
            os.path.realpath(self.ctx.rootdir): {"bind": os.path.realpath(self.ctx.rootdir), "mode": "ro"},
            pkg: {"bind": f"{PLUGIN_MOUNT}/pytest_virtoverhead", "mode": "ro"},
        }
        image_env = dict(
            item.split("=", 1) for item in (image.attrs.get("Config") or {}).get("Env") or [] if "=" in item
        )
        pythonpath = PLUGIN_MOUNT + (":" + image_env["PYTHONPATH"] if image_env.get("PYTHONPATH") else "")
        boot = IMAGE_BOOT % {
            "mark": MISSING_MARK, "min": MIN_PYTHON, "min_text": ".".join(map(str, MIN_PYTHON)),
            "scratch_env": SCRATCH_ENV, "cwd": os.path.realpath(self.ctx.rootdir),
        }
        return image, [python, "-c", boot], binds, {"PYTHONPATH": pythonpath}

    def start(self) -> Transport:
        try:
            return self._start()
        except _gone_errors() as exc:
            # The daemon went away (or stopped answering) during the start.
            self._discard()
            self._client = None  # the next start pings it again
            raise EnvUnavailable(f"the Docker daemon at {self.where} stopped answering while the container of "
                                 f"{self.spec.name!r} was starting ({_gone_reason(exc)}): {HOW_TO_START}") from None

    def _discard(self) -> None:
        """stop() on a start's failure path: its own errors must not hide the first."""
        try:
            self.stop()
        except Exception:  # noqa: BLE001
            pass

    def _start(self) -> Transport:
        if self._container_id is not None:
            self.stop()
        self._daemon_gone, self._last_state, self._last_stderr = "", {}, ""  # of the last container
        client = self.client()
        docker = _docker()
        try:
            self._info = client.info()
        except docker.errors.DockerException as exc:
            raise EnvUnavailable(f"the Docker daemon did not answer `info` ({_short(exc)}): {HOW_TO_START}") from None
        runtime = self._runtime()
        env: dict[str, str] = {"PYTHONUNBUFFERED": "1", SCRATCH_ENV: SCRATCH_PATH}
        if self.mode == "mirror":
            try:
                image = ensure_mirror_image(client)
            except docker.errors.DockerException as exc:
                raise EnvUnavailable(f"cannot build the mirror image locally ({_short(exc)})") from None
            command = self.worker_command(self.ctx.python, "--cwd", self.ctx.rootdir)
            binds = mirror_binds(self.ctx)
            env.update({k: os.environ[k] for k in PASS_ENV if k in os.environ})
            env["HOME"] = "/tmp"
            user = self.spec.options.get("user") or f"{os.getuid()}:{os.getgid()}"
        else:
            image, command, binds, extra_env = self._image_mode_setup(client)
            env.update(extra_env)
            user = self.spec.options.get("user") or None
        self._image = image

        scratch = self.spec.options.get("scratch", "layer") or "layer"
        volumes_from_scratch: dict[str, dict[str, str]] = {}
        if scratch == "volume":
            name = self._resource_name("scratch")
            client.volumes.create(name=name, labels=self._labels())
            self._volume = name
            volumes_from_scratch[name] = {"bind": SCRATCH_PATH, "mode": "rw"}
        elif scratch != "layer":
            os.makedirs(scratch, exist_ok=True)
            volumes_from_scratch[os.path.realpath(scratch)] = {"bind": SCRATCH_PATH, "mode": "rw"}

        api = client.api
        host_config = api.create_host_config(
            binds={**binds, **volumes_from_scratch},
            network_mode="none",
            privileged=False,
            cpuset_cpus=",".join(map(str, self.ctx.cpus)) if self.ctx.cpus else None,
            mem_limit=f"{int(self.ctx.memory_mb)}m" if self.ctx.memory_mb else None,
            auto_remove=True,
            runtime=runtime,
            security_opt=["seccomp=unconfined"] if self.spec.options.get("seccomp") == "unconfined" else None,
            init=False,
        )
        config = api.create_container_config(
            image.id, command, stdin_open=True, tty=False, environment=env, labels=self._labels(),
            user=user, working_dir=os.path.realpath(self.ctx.rootdir), host_config=host_config,
            network_disabled=True,
        )
        # The SDK has no argument for it: stdin closes when the (only)
        # attached client goes away, so a dead host leaves no worker behind.
        config["StdinOnce"] = True
        name = self._resource_name("worker")
        self._pending_name = name
        self._started_at = time.time()
        try:
            created = api.create_container_from_config(config, name=name)
        except docker.errors.DockerException as exc:
            self._discard()
            raise EnvUnavailable(f"cannot create the container of {self.spec.name!r}: {_short(exc)}") from None
        self._container_id, self._container_name = created["Id"], name
        self._pending_name = None
        self._last_container = f"{name} ({created['Id'][:12]})"
        try:
            raw = api.attach_socket(created["Id"], params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
            sock = getattr(raw, "_sock", raw)
            transport = AttachTransport(sock, keep=raw)
            self._transport = transport
            api.start(created["Id"])
        except docker.errors.DockerException as exc:
            self._discard()
            raise EnvUnavailable(self._start_failure(_short(exc), command[0])) from None
        # Wait for the worker's first output here, so that a worker that
        # cannot start (no Python, no pytest in the image) is reported in
        # one line instead of as a stream that ended.
        try:
            alive = transport.wait_output(self.ctx.startup_timeout)
        except socket.timeout:
            diag = self.diagnostics()
            self._discard()
            raise EnvUnavailable(
                f"the worker in container {name} wrote nothing within {self.ctx.startup_timeout:g} s\n{diag}".rstrip()
            ) from None
        if not alive:
            stderr = transport.stderr
            self._last_stderr = stderr
            self._discard()
            raise EnvUnavailable(self._exit_failure(stderr, command[0]))
        self._meta = self._collect_metadata(runtime)
        return transport

    def _start_failure(self, reason: str, program: str) -> str:
        if "executable file not found" in reason or "no such file or directory" in reason:
            if self.mode == "image":
                return (f"image {self.spec.options['image']!r} has no {program!r} on its PATH ({reason}): "
                        f"the container worker needs Python >= 3.10 with pytest in the image; set option "
                        f"python= to its interpreter or use the default mirror mode")
            return f"the host interpreter {program} cannot run in the mirror container ({reason})"
        runtime = self.spec.options.get("runtime") or self._info.get("DefaultRuntime") or "runc"
        hint = ""
        if "hybrid mode" in reason:
            hint = (f"; {runtime} does not support this host's hybrid cgroup v1/v2 layout (a cgroup2 "
                    "hierarchy with controllers enabled): use runc, or boot the host with cgroup v2 only")
        return f"cannot start the container of {self.spec.name!r} with runtime {runtime}: {reason}{hint}"

    def _exit_failure(self, stderr: str, program: str) -> str:
        for line in stderr.splitlines():
            if line.startswith(MISSING_MARK):
                what = line[len(MISSING_MARK):].strip()
                return (f"image {self.spec.options.get('image')!r} lacks {what}: the container worker needs "
                        "Python >= 3.10 with pytest; install them in the image or use the default mirror mode")
        tail = "\n".join(stderr.strip().splitlines()[-15:])
        return (f"the worker in the container of {self.spec.name!r} ({program}) exited before saying ready"
                + (f"; its stderr:\n{tail}" if tail else ""))

    def _collect_metadata(self, runtime: str | None) -> dict[str, Any]:
        info = self._info
        image = self._image
        tags = list(getattr(image, "tags", None) or [])
        return {
            "mode": self.mode,
            "runtime": runtime or info.get("DefaultRuntime") or "runc",
            "image": tags[0] if tags else self.spec.options.get("image"),
            "image_id": getattr(image, "id", None),
            "docker_version": info.get("ServerVersion"),
            "docker_cgroup_version": str(info.get("CgroupVersion") or ""),
            "cgroup_driver": info.get("CgroupDriver"),
            "storage_driver": info.get("Driver"),
            "cpuset_cpus": ",".join(map(str, self.ctx.cpus)) if self.ctx.cpus else None,
            "mem_limit_mb": int(self.ctx.memory_mb) if self.ctx.memory_mb else None,
            "network": "none",
            "seccomp": self.spec.options.get("seccomp") or "default",
            "scratch": self.scratch_kind,
            "scratch_path": SCRATCH_PATH,
            "container": self._container_name,
            "container_id": (self._container_id or "")[:12],
        }

    def stop(self) -> None:
        """Remove the container (and scratch volume). Idempotent, safe to call
        twice or from a signal handler: a stop re-entered on the same thread
        (a signal arriving during stop) returns at once; a stop on another
        thread waits for the running one to finish."""
        me = threading.get_ident()
        if self._stopping == me:
            return
        if not self._stop_lock.acquire(timeout=60):
            return
        self._stopping = me
        try:
            transport, self._transport = self._transport, None
            cid, self._container_id = self._container_id, None
            volume, self._volume = self._volume, None
            pending, self._pending_name = self._pending_name, None
            if transport is not None:
                self._last_stderr = transport.stderr or self._last_stderr
                transport.close_stdin()
            client = self._client
            if client is None:
                return
            try:
                self._remove(client, cid or pending, volume, found=cid is not None)
            except _gone_errors() as exc:
                if transport is not None:
                    transport.close()
                self._daemon_gone = (f"the Docker daemon at {self.where} is not answering ({_gone_reason(exc)}): "
                                     f"it stopped or restarted, and the worker's stream ended with it; container "
                                     f"{self._last_container or pending} may exist until the daemon is back "
                                     "(which removes it, as does the next session)")
                raise EnvError(self._daemon_gone) from None
            if transport is not None:
                transport.close()
        finally:
            self._stopping = None
            self._stop_lock.release()

    def _remove(self, client, cid: str | None, volume: str | None, found: bool) -> None:
        """Remove container ``cid`` (an id, or the name of one whose creation
        may have been interrupted: ``found`` false) and ``volume``."""
        docker = _docker()
        if cid is not None:
            if found:
                self._last_state = self._final_state(client, cid)
            try:
                client.api.remove_container(cid, force=True, v=True)
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as exc:
                # "removal already in progress": AutoRemove won the race
                # (the worker exited on "shutdown"); wait until it is gone.
                if "in progress" not in str(exc):
                    raise
            self._wait_removed(client, cid)
        if volume is not None:
            try:
                client.api.remove_volume(volume, force=True)
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError:
                # The container may still be going away; wait for it once.
                if cid is not None:
                    self._wait_removed(client, cid)
                try:
                    client.api.remove_volume(volume, force=True)
                except docker.errors.NotFound:
                    pass

    def _final_state(self, client, cid: str) -> dict[str, Any]:
        """The container's State (Status, ExitCode, OOMKilled); from the
        daemon's event log when AutoRemove already removed the container."""
        docker = _docker()
        try:
            return client.api.inspect_container(cid).get("State") or {}
        except docker.errors.NotFound:
            pass
        except docker.errors.DockerException:
            return {}
        state: dict[str, Any] = {}
        try:
            events = client.api.events(since=int(self._started_at) - 1, until=f"{time.time():.6f}",
                                       filters={"container": cid}, decode=True)
            for event in events:
                action = event.get("status") or event.get("Action")
                if action == "oom":
                    state["OOMKilled"] = True
                elif action == "die":
                    code = (event.get("Actor") or {}).get("Attributes", {}).get("exitCode")
                    state.update({"Status": "exited (removed)", "ExitCode": int(code) if code else None})
        except docker.errors.DockerException:
            pass
        return state

    @staticmethod
    def _wait_removed(client, cid: str, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                client.api.inspect_container(cid)
            except Exception:  # noqa: BLE001 - NotFound: gone, as wanted
                return
            time.sleep(0.02)

    def metadata(self) -> dict[str, Any]:
        return dict(self._meta)

    # -- footprint (issue 16) -------------------------------------------------

    def _fp_target(self) -> tuple[int, dict[str, str], int | None] | None:
        """(init pid, its cgroup directories, the containerd shim's pid) of
        the running container, looked up once per container."""
        cid = self._container_id
        if cid is None or self._client is None:
            return None
        cached = getattr(self, "_fp_cache", None)
        if cached and cached[0] == cid:
            return cached[1]
        api = self._client.api  # a short timeout (the client's default is a minute or more)
        info = api._result(api._get(api._url("/containers/{0}/json", cid), timeout=5), True)
        pid = int((info.get("State") or {}).get("Pid") or 0)
        if pid <= 0:
            return None
        dirs = footprint.cgroup_dirs(pid)
        shim = None
        try:
            ppid = int(footprint._read(f"/proc/{pid}/stat").rsplit(")", 1)[1].split()[1])
            if "shim" in footprint._read(f"/proc/{ppid}/comm"):
                shim = ppid
        except (OSError, ValueError, IndexError):
            pass
        self._fp_cache = (cid, (pid, dirs, shim))
        return pid, dirs, shim

    def footprint_sample(self) -> dict[str, Any]:
        """The container's memory cgroup (usage and the kernel's high-water
        mark) and CPU (its cgroup's, plus the containerd shim's own)."""
        target = self._fp_target()
        if target is None:
            return {}
        pid, dirs, shim = target
        out: dict[str, Any] = {}
        mem = footprint.cgroup_memory(dirs)
        if mem is not None:
            where = f"cgroup v{mem['version']} {mem['dir']}"
            out[footprint.MEMORY] = footprint.Reading(mem["current"], "B", f"{where}/{mem['current_file']}")
            if mem.get("peak") is not None:
                out[footprint.MEMORY_PEAK] = footprint.Reading(mem["peak"], "B", f"{where}/{mem['peak_file']}")
            fields = {"anon": "total_rss", "cache": "total_cache"} if mem["version"] == 1 else \
                {"anon": "anon", "cache": "file"}
            for part, name in fields.items():
                if mem.get(part) is not None:
                    out[f"{footprint.MEMORY}.{part}"] = footprint.Reading(mem[part], "B",
                                                                          f"{where}/memory.stat {name}")
        cpu = footprint.cgroup_cpu_seconds(dirs)
        if cpu is not None:
            seconds, what = cpu
            source = f"cgroup {what}"
            if shim is not None:
                try:
                    seconds += footprint.proc_cpu_seconds(shim, children=False)
                    source += f" + containerd shim (pid {shim}) /proc/<pid>/stat utime+stime"
                except (OSError, ValueError, IndexError):
                    pass
            out[footprint.CPU] = footprint.Reading(seconds, "s", source)
        return out

    def footprint_storage(self) -> dict[str, Any]:
        """The image (docker image inspect Size: layers) and the container's
        writable layer (docker container inspect SizeRw)."""
        out: dict[str, Any] = {}
        image = self._image
        if image is not None:
            size = (getattr(image, "attrs", None) or {}).get("Size")
            if size is not None:
                what = "the mirror image (host files are bind-mounted read-only, not copied)" \
                    if self.mode == "mirror" else f"image {self.spec.options.get('image')}"
                out["image"] = footprint.Reading(int(size), "B", f"docker image inspect Size: {what}")
        cid = self._container_id
        if cid is not None and self._client is not None:
            api = self._client.api  # the SDK's inspect_container has no size argument: the API's ?size=1
            url = api._url("/containers/{0}/json", cid)
            info = api._result(api._get(url, params={"size": 1}, timeout=5), True)
            if info.get("SizeRw") is not None:
                out["writable_layer"] = footprint.Reading(int(info["SizeRw"]), "B",
                                                          "docker container inspect SizeRw (its overlayfs upper layer)")
        return out

    def diagnostics(self) -> str:
        parts = []
        if self._daemon_gone:
            parts.append(self._daemon_gone)
        if self._last_container:
            parts.append(f"container: {self._last_container}, mode {self.mode}")
        state = self._last_state
        if not state and self._container_id and self._client is not None:
            try:
                state = self._client.api.inspect_container(self._container_id).get("State") or {}
            except Exception:  # noqa: BLE001 - diagnostics must not raise
                state = {}
        if state.get("OOMKilled"):
            limit = f"{int(self.ctx.memory_mb)} MiB" if self.ctx.memory_mb else "its limit"
            parts.insert(0, f"OOM-killed: the container hit its memory limit ({limit}, --virt-memory) and the "
                            "kernel's OOM killer ended the worker")
        if state:
            parts.append("container state: " + ", ".join(
                f"{k}={state.get(k)}" for k in ("Status", "ExitCode", "OOMKilled", "Error") if k in state))
        stderr = self._transport.stderr if self._transport is not None else self._last_stderr
        if stderr.strip():
            parts.append("worker stderr (tail):\n" + stderr[-4000:])
        return "\n".join(parts)

    # -- leftovers -------------------------------------------------------------

    @classmethod
    def reap(cls, ctx: RunContext) -> list[str]:
        """Remove containers and volumes whose owning pytest process is dead."""
        try:
            client = connect(timeout=30)
        except EnvUnavailable:
            return []
        docker = _docker()
        removed: list[str] = []
        try:
            containers = client.api.containers(all=True, filters={"label": OWNER_LABEL})
        except docker.errors.DockerException:
            containers = []
        for c in containers:
            labels = c.get("Labels") or {}
            if owner_alive(labels.get(OWNER_LABEL, ""), ctx.hostname):
                continue
            try:
                client.api.remove_container(c["Id"], force=True, v=True)
                removed.append("container " + ((c.get("Names") or [c["Id"][:12]])[0]).lstrip("/"))
            except docker.errors.DockerException:
                pass
        try:
            volumes = client.api.volumes(filters={"label": OWNER_LABEL}).get("Volumes") or []
        except docker.errors.DockerException:
            volumes = []
        for v in volumes:
            labels = v.get("Labels") or {}
            if owner_alive(labels.get(OWNER_LABEL, ""), ctx.hostname):
                continue
            try:
                client.api.remove_volume(v["Name"], force=True)
                removed.append("volume " + v["Name"])
            except docker.errors.DockerException:
                pass
        return removed


__all__ = ["ContainerBackend", "SESSION_LABEL", "connect", "ensure_mirror_image", "mirror_binds", "mirror_tar"]
