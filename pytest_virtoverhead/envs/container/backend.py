"""The container backend: one long-lived container per environment per
session, in mirror mode (:mod:`.mirror`) or image mode (:mod:`.image`).

The host talks to the worker over the container's attached stdin/stdout
(:mod:`.stream`); the container is created with ``StdinOnce`` and
``AutoRemove``, so if the host process dies the worker reads EOF, exits and
the daemon removes the container even before a reaper runs.
"""

from __future__ import annotations

import os
import re
import socket
import threading
import time
from typing import Any

from ...wire.envvars import SCRATCH_ENV
from ..base import LABEL_PREFIX, Backend, RunContext, host_env
from ..channel import Transport
from ..direct import CONTAINER_PATH
from ..errors import EnvError, EnvUnavailable
from . import footprint as container_footprint
from .client import (
    HOW_TO_START,
    connect,
    daemon_address,
    docker_sdk,
    final_state,
    gone_errors,
    gone_reason,
    remove,
    remove_orphans,
    short_error,
)
from .image import image_setup, missing
from .limits import DEFAULT_PIDS_LIMIT, pids_limit
from .mirror import PASS_ENV_EXTRA, SCRATCH_PATH, ensure_mirror_image, mirror_binds
from .stream import AttachTransport

ENV_LABEL = f"{LABEL_PREFIX}.env"


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
        "pids_limit": f"most processes the container may hold (default {DEFAULT_PIDS_LIMIT}: a fork bomb in a "
                      "test stays inside it), or 'none'",
    }

    def pids_limit(self) -> int | None:
        return pids_limit(self.spec.options)

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
        self._fp_cache: tuple[str, tuple[dict[str, str], int | None]] | None = None
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
        return daemon_address(self.spec.options.get("docker_url"))

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

    def start(self) -> Transport:
        try:
            return self._start()
        except gone_errors() as exc:
            # The daemon went away (or stopped answering) during the start.
            self._discard()
            self._client = None  # the next start pings it again
            raise EnvUnavailable(f"the Docker daemon at {self.where} stopped answering while the container of "
                                 f"{self.spec.name!r} was starting ({gone_reason(exc)}): {HOW_TO_START}") from None

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
        docker = docker_sdk()
        try:
            self._info = client.info()
        except docker.errors.DockerException as exc:
            raise EnvUnavailable(f"the Docker daemon did not answer `info` ({short_error(exc)}): {HOW_TO_START}") from None
        runtime = self._runtime()
        if self.mode == "mirror":
            image, command, binds, extra_env, user = self._mirror_setup(client)
        else:
            image, command, binds, extra_env = image_setup(client, self.spec, self.ctx)
            user = self.spec.options.get("user") or None
        self._image = image
        env = {"PYTHONUNBUFFERED": "1", SCRATCH_ENV: SCRATCH_PATH, **extra_env}
        direct = {self.direct_host_dir: {"bind": CONTAINER_PATH, "mode": "ro"}} if self.direct_host_dir else {}
        binds = {**binds, **self._scratch_binds(client), **direct}  # direct: envs/direct.py
        cid, name = self._create(client, image, command, binds, env, user, runtime)
        transport = self._attach_and_start(client, cid, command[0])
        self._await_worker(transport, name, command[0])
        self._meta = self._collect_metadata(runtime)
        return transport

    def _mirror_setup(self, client) -> tuple[Any, list[str], dict[str, dict[str, str]], dict[str, str], str]:
        """(image, command, bind mounts, extra environment, user) of mirror mode."""
        try:
            image = ensure_mirror_image(client)
        except docker_sdk().errors.DockerException as exc:
            raise EnvUnavailable(f"cannot build the mirror image locally ({short_error(exc)})") from None
        command = self.worker_command(self.ctx.python, "--cwd", self.ctx.rootdir)
        env = {**host_env(*PASS_ENV_EXTRA), "HOME": "/tmp"}
        user = self.spec.options.get("user") or f"{os.getuid()}:{os.getgid()}"
        return image, command, mirror_binds(self.ctx), env, user

    def _scratch_binds(self, client) -> dict[str, dict[str, str]]:
        """The scratch directory's mount: none for the writable layer, else a
        labelled volume (created here) or the host directory of the option."""
        scratch = self.spec.options.get("scratch", "layer") or "layer"
        if scratch == "volume":
            name = self._resource_name("scratch")
            client.volumes.create(name=name, labels=self._labels())
            self._volume = name
            return {name: {"bind": SCRATCH_PATH, "mode": "rw"}}
        if scratch != "layer":
            os.makedirs(scratch, exist_ok=True)
            return {os.path.realpath(scratch): {"bind": SCRATCH_PATH, "mode": "rw"}}
        return {}

    def _create(self, client, image, command: list[str], binds: dict[str, dict[str, str]], env: dict[str, str],
                user: str | None, runtime: str | None) -> tuple[str, str]:
        """Create the worker's container; return its id and name."""
        api = client.api
        host_config = api.create_host_config(
            binds=binds,
            network_mode="none",
            privileged=False,
            cpuset_cpus=",".join(map(str, self.ctx.cpus)) if self.ctx.cpus else None,
            mem_limit=f"{int(self.ctx.memory_mb)}m" if self.ctx.memory_mb else None,
            pids_limit=self.pids_limit() or -1,
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
        except docker_sdk().errors.DockerException as exc:
            self._discard()
            raise EnvUnavailable(f"cannot create the container of {self.spec.name!r}: {short_error(exc)}") from None
        self._container_id, self._container_name = created["Id"], name
        self._pending_name = None
        self._last_container = f"{name} ({created['Id'][:12]})"
        return created["Id"], name

    def _attach_and_start(self, client, cid: str, program: str) -> AttachTransport:
        """Attach to the container's stdin, stdout and stderr, then start it."""
        api = client.api
        try:
            raw = api.attach_socket(cid, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
            sock = getattr(raw, "_sock", raw)
            transport = AttachTransport(sock, keep=raw)
            self._transport = transport
            api.start(cid)
        except docker_sdk().errors.DockerException as exc:
            self._discard()
            raise EnvUnavailable(self._start_failure(short_error(exc), program)) from None
        return transport

    def _await_worker(self, transport: AttachTransport, name: str, program: str) -> None:
        """Wait for the worker's first output here, so that a worker that
        cannot start (no Python, no pytest in the image) is reported in one
        line instead of as a stream that ended."""
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
            raise EnvUnavailable(self._exit_failure(stderr, program))

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
        what = missing(stderr)
        if what is not None:
            return (f"image {self.spec.options.get('image')!r} lacks {what}: the container worker needs "
                    "Python >= 3.10 with pytest; install them in the image or use the default mirror mode")
        tail = "\n".join(stderr.strip().splitlines()[-15:])
        return (f"the worker in the container of {self.spec.name!r} ({program}) exited before saying ready"
                + (f"; its stderr:\n{tail}" if tail else ""))

    def direct_path(self) -> str | None:
        return CONTAINER_PATH if self.direct_host_dir else None

    def allow_cpus(self, cpus: tuple[int, ...] | None) -> bool:
        """Widen the cpuset to ``cpus`` while worker processes start, or narrow
        it back (None): the kernel then moves every process onto the
        session's CPUs, so measuring runs under the cpuset asked for."""
        target = cpus or self.ctx.cpus
        if not target or self._container_id is None or self._client is None:
            return False
        try:
            self._client.api.update_container(self._container_id, cpuset_cpus=",".join(map(str, target)))
        except Exception:  # noqa: BLE001 - the daemon refused: start on the session's CPUs
            return False
        return True

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
            "pids_limit": self.pids_limit(),
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
                if cid is not None:
                    self._last_state = final_state(client, cid, self._started_at)
                remove(client, cid or pending, volume)
            except gone_errors() as exc:
                if transport is not None:
                    transport.close()
                self._daemon_gone = (f"the Docker daemon at {self.where} is not answering ({gone_reason(exc)}): "
                                     f"it stopped or restarted, and the worker's stream ended with it; container "
                                     f"{self._last_container or pending} may exist until the daemon is back "
                                     "(which removes it, as does the next session)")
                raise EnvError(self._daemon_gone) from None
            if transport is not None:
                transport.close()
        finally:
            self._stopping = None
            self._stop_lock.release()

    def metadata(self) -> dict[str, Any]:
        return dict(self._meta)

    # -- footprint -----------------------------------------------------------------

    def _fp_target(self) -> tuple[dict[str, str], int | None] | None:
        """:func:`.footprint.target` of the running container, looked up once per container."""
        cid = self._container_id
        if cid is None or self._client is None:
            return None
        if self._fp_cache and self._fp_cache[0] == cid:
            return self._fp_cache[1]
        found = container_footprint.target(self._client, cid)
        if found is not None:
            self._fp_cache = (cid, found)
        return found

    def footprint_sample(self) -> dict[str, Any]:
        target = self._fp_target()
        return {} if target is None else container_footprint.sample(*target)

    def footprint_storage(self) -> dict[str, Any]:
        what = "the mirror image (host files are bind-mounted read-only, not copied)" \
            if self.mode == "mirror" else f"image {self.spec.options.get('image')}"
        return container_footprint.storage(self._client, self._container_id, self._image, what)

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
                f"{k}={state.get(k)}" for k in ("Status", "ExitCode", "OOMKilled", "Error") if k in state)
                + (" (OOMKilled is Docker's flag for the container's first process, the environment's worker; "
                   "an OOM kill of a worker process is named above)" if state.get("OOMKilled") is False else ""))
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
        return remove_orphans(client, ctx.hostname)
