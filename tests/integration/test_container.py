"""The ``container`` environment against a real Docker daemon.

Every test drives real containers; nothing is mocked. Without a reachable
daemon (or without the docker SDK) the tests skip with the backend's own
one-line reason, unless ``--virt-require=container`` or the environment
variable ``VIRTOVERHEAD_REQUIRE=container`` says the container kind is
required: then they fail.

Functions run inside the container are defined at module level (the worker
finds them by module and file). This module imports docker only inside
fixtures, so the worker can import it anywhere.
"""

from __future__ import annotations

import io
import os
import socket
import tarfile
import uuid

import pytest
from envrequire import unavailable

from pytest_virtoverhead.envs import Environment, EnvSpec, EnvUnavailable, RemoteError, RunContext, backend_class
from pytest_virtoverhead.envs.base import OWNER_LABEL, SESSION_LABEL
from pytest_virtoverhead.wire.envvars import SCRATCH_ENV

ROOTDIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TEST_LABEL = "io.github.pytest-virtoverhead.test"

pytestmark = pytest.mark.container


# --------------------------------------------------------------------------
# functions that run inside the container


def probe_identity() -> dict:
    def read(path):
        try:
            with open(path) as f:
                return f.read()
        except OSError as exc:
            return f"<{exc}>"
    return {
        "hostname": socket.gethostname(),
        "kernel": os.uname().release,
        "pid": os.getpid(),
        "cgroup": read("/proc/1/cgroup"),
        "net": sorted(os.listdir("/sys/class/net")),
        "uid": os.getuid(),
        "cwd": os.getcwd(),
        "dockerenv": os.path.exists("/.dockerenv"),
    }


def try_write(path: str) -> str:
    try:
        with open(path, "w") as f:
            f.write("must not land on the host")
    except OSError as exc:
        return f"{type(exc).__name__}: errno {exc.errno}"
    return "written"


def scratch_probe(name: str, text: str) -> dict:
    scratch = os.environ[SCRATCH_ENV]
    path = os.path.join(scratch, name)
    with open(path, "w") as f:
        f.write(text)
    # The file system the scratch directory lives on: the longest mount
    # point that contains it.
    best = ("", "")
    with open("/proc/self/mounts") as f:
        for line in f:
            _dev, mnt, fstype = line.split()[:3]
            if (scratch == mnt or scratch.startswith(mnt.rstrip("/") + "/")) and len(mnt) > len(best[0]):
                best = (mnt, fstype)
    return {"scratch": scratch, "mount": best[0], "fstype": best[1], "size": os.path.getsize(path)}


def cgroup_limits() -> dict:
    def read(path):
        try:
            with open(path) as f:
                return f.read().strip()
        except OSError:
            return None
    return {
        "affinity": sorted(os.sched_getaffinity(0)),
        "v1_cpuset": read("/sys/fs/cgroup/cpuset/cpuset.cpus"),
        "v1_memory": read("/sys/fs/cgroup/memory/memory.limit_in_bytes"),
        "v2_cpuset": read("/sys/fs/cgroup/cpuset.cpus.effective"),
        "v2_memory": read("/sys/fs/cgroup/memory.max"),
    }


def fail_inside(value: int) -> None:
    inner_helper_that_raises(value)


def inner_helper_that_raises(value: int) -> None:
    raise ValueError(f"bad value {value} inside the container")


def python_version() -> str:
    import platform
    return platform.python_version()


def seccomp_mode() -> str:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("Seccomp:"):
                return line.split()[1]
    return "?"


# --------------------------------------------------------------------------
# fixtures


def _unavailable(config: pytest.Config, reason: str):
    unavailable(config, "container", reason)


@pytest.fixture
def session_id():
    return f"test-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def make_env(docker_client, pytestconfig, session_id):
    """Factory: a started container Environment; every one is stopped after
    the test, and the test fails if anything labelled with its session is
    left behind."""
    started: list[Environment] = []

    def make(options=None, cpus=None, memory_mb=512, name="container", start=True, skip=True):
        ctx = RunContext(session_id=session_id, rootdir=ROOTDIR, cpus=cpus, memory_mb=memory_mb,
                         startup_timeout=60, job_timeout=60)
        env = Environment(backend_class("container")(EnvSpec(name, "container", dict(options or {})), ctx))
        started.append(env)
        if start:
            try:
                env.start()
            except EnvUnavailable as exc:
                if not skip:
                    raise
                _unavailable(pytestconfig, str(exc))
        return env

    yield make
    for env in started:
        env.stop()
    label = f"{SESSION_LABEL}={session_id}"
    left = [c.name for c in docker_client.containers.list(all=True, filters={"label": label})]
    left += [v.name for v in docker_client.volumes.list(filters={"label": label})]
    assert not left, f"left behind after stop(): {left}"


@pytest.fixture
def env(make_env):
    return make_env()


def _build_image(client, files: dict[str, bytes | str | None], tag: str, env: list[str] | None = None):
    """Import a tiny image made of ``files`` (path -> bytes, symlink target
    prefixed with '@', or None for a directory)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for path, content in files.items():
            info = tarfile.TarInfo(path.lstrip("/"))
            if content is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tf.addfile(info)
            elif isinstance(content, str) and content.startswith("@"):
                info.type, info.linkname = tarfile.SYMTYPE, content[1:]
                tf.addfile(info)
            else:
                data = content if isinstance(content, bytes) else content.encode()
                info.size, info.mode = len(data), 0o755
                tf.addfile(info, io.BytesIO(data))
    repo, _, version = tag.partition(":")
    changes = [f"LABEL {TEST_LABEL}=1"] + [f"ENV {e}" for e in env or []]
    client.api.import_image_from_data(buf.getvalue(), repository=repo, tag=version, changes=changes)
    return client.images.get(tag)


def _add_tree(tf: tarfile.TarFile, src: str, dest: str, skip=("__pycache__", "test", "idlelib", "tkinter",
                                                            "ensurepip", "lib2to3", "pydoc_data")) -> None:
    def keep(info: tarfile.TarInfo):
        parts = info.name.split("/")
        return None if any(p in skip for p in parts[len(dest.strip("/").split("/")):]) else info
    tf.add(src, arcname=dest.lstrip("/"), filter=keep)


@pytest.fixture(scope="module")
def python_images(docker_client):
    """Two local images with Debian's own python3 (no pip, no network): one
    without pytest and one with pytest copied in from the host. Removed at
    the end of the module."""
    import subprocess

    python = "/usr/bin/python3.11"
    if not os.path.exists(python) or not os.path.isdir("/usr/lib/python3.11"):
        pytest.skip("needs Debian's /usr/bin/python3.11 to build a Python image offline")
    libs = []
    for line in subprocess.run(["ldd", python], capture_output=True, text=True, check=True).stdout.splitlines():
        for word in line.split():
            if word.startswith("/"):
                libs.append(word)
    import pytest as _pytest_pkg  # the host's pytest and its pure-Python dependencies
    site = os.path.dirname(os.path.dirname(_pytest_pkg.__file__))
    pure = [n for n in ("pytest", "_pytest", "pluggy", "iniconfig", "packaging", "pygments", "py.py")
            if os.path.exists(os.path.join(site, n))]
    tags = {}
    suffix = uuid.uuid4().hex[:8]
    for kind in ("nopytest", "pytest"):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tf:
            for d in ("usr/bin", "tmp", "usr/lib/x86_64-linux-gnu", "lib64"):
                info = tarfile.TarInfo(d)
                info.type, info.mode = tarfile.DIRTYPE, 0o1777 if d == "tmp" else 0o755
                tf.addfile(info)
            tf.add(python, arcname="usr/bin/python3.11")
            link = tarfile.TarInfo("usr/bin/python3")
            link.type, link.linkname = tarfile.SYMTYPE, "python3.11"
            tf.addfile(link)
            for lib in libs:
                real = os.path.realpath(lib)
                tf.add(real, arcname=lib.lstrip("/"))
            _add_tree(tf, "/usr/lib/python3.11", "/usr/lib/python3.11")
            if kind == "pytest":
                for name in pure:
                    _add_tree(tf, os.path.join(site, name), f"/usr/local/lib/python3.11/dist-packages/{name}",
                              skip=("__pycache__",))
        tag = f"pytest-virtoverhead/test-{kind}:{suffix}"
        client = docker_client
        client.api.import_image_from_data(buf.getvalue(), repository=tag.split(":")[0], tag=suffix,
                                          changes=[f"LABEL {TEST_LABEL}=1", "ENV PATH=/usr/bin:/bin"])
        tags[kind] = tag
    yield tags
    for tag in tags.values():
        try:
            docker_client.images.remove(tag, force=True)
        except Exception:  # noqa: BLE001
            pass


# --------------------------------------------------------------------------
# the worker runs in a container


def test_worker_runs_in_a_container(env):
    inside = env.run(probe_identity)
    assert inside["hostname"] != socket.gethostname()
    assert inside["kernel"] == os.uname().release  # a container shares the host kernel
    assert inside["pid"] == 1  # the worker is the container's init
    assert "docker" in inside["cgroup"]
    assert inside["net"] == ["lo"]  # network_mode=none
    assert inside["uid"] == os.getuid()
    assert inside["cwd"] == os.path.realpath(ROOTDIR)


def test_mirror_is_read_only(env, tmp_path):
    target = os.path.join(ROOTDIR, f".virtoverhead-ro-probe-{uuid.uuid4().hex}")
    assert env.run(try_write, target).startswith("OSError: errno 30")  # EROFS
    assert not os.path.exists(target)
    assert env.run(try_write, "/usr/virtoverhead-probe").startswith("OSError: errno 30")
    assert env.run(try_write, "/etc/virtoverhead-probe").startswith("OSError: errno 30")
    assert env.run(try_write, "/tmp/ok") == "written"  # the container's own layer


def test_metadata_names_runtime_image_and_limits(env, docker_client):
    meta = env.metadata
    info = docker_client.info()
    assert meta["kind"] == "container"
    assert meta["mode"] == "mirror"
    assert meta["runtime"] == info["DefaultRuntime"]
    assert meta["image"].startswith("pytest-virtoverhead/mirror:")
    assert meta["image_id"].startswith("sha256:")
    assert meta["docker_version"] == info["ServerVersion"]
    assert meta["storage_driver"] == info["Driver"]
    assert meta["cgroup_driver"] == info["CgroupDriver"]
    assert meta["docker_cgroup_version"] == str(info["CgroupVersion"])
    assert meta["mem_limit_mb"] == 512
    assert meta["memory_limit_mb"] == 512  # as the worker sees its cgroup
    assert meta["network"] == "none"
    assert meta["scratch"] == "layer"
    image = docker_client.images.get(meta["image"])
    assert image.labels.get("io.github.pytest-virtoverhead.image") == "mirror"


def test_cpuset_and_memory_limit_are_applied(make_env, docker_client):
    cpu = max(os.sched_getaffinity(0))
    env = make_env(cpus=(cpu,), memory_mb=300)
    limits = env.run(cgroup_limits)
    assert limits["affinity"] == [cpu]
    assert env.metadata["cpuset"] == [cpu]
    assert env.metadata["cpuset_cpus"] == str(cpu)
    if limits["v1_memory"] is not None:
        assert int(limits["v1_memory"]) == 300 * 1024 * 1024
        assert limits["v1_cpuset"] == str(cpu)
    else:
        assert int(limits["v2_memory"]) == 300 * 1024 * 1024
    attrs = docker_client.api.inspect_container(env.metadata["container_id"])
    host = attrs["HostConfig"]
    assert host["CpusetCpus"] == str(cpu)
    assert host["Memory"] == 300 * 1024 * 1024
    assert host["NetworkMode"] == "none"
    assert host["Privileged"] is False
    assert not any("seccomp=unconfined" in o for o in host.get("SecurityOpt") or [])
    labels = attrs["Config"]["Labels"]
    assert labels[SESSION_LABEL] == env.ctx.session_id
    assert labels[OWNER_LABEL] == f"{socket.gethostname()}:{os.getpid()}"


def test_default_seccomp_is_on_and_can_be_turned_off(make_env):
    assert make_env().run(seccomp_mode) == "2"  # filter mode
    off = make_env(options={"seccomp": "unconfined"}, name="noseccomp")
    assert off.run(seccomp_mode) == "0"
    assert off.metadata["seccomp"] == "unconfined"


# --------------------------------------------------------------------------
# scratch


def test_scratch_defaults_to_the_writable_layer(env):
    got = env.run(scratch_probe, "a.txt", "hello")
    assert got["scratch"] == "/scratch"
    assert got["mount"] == "/"
    assert got["fstype"] == "overlay"  # overlay2 storage driver
    assert got["size"] == 5


def test_scratch_volume_is_labelled_and_removed(make_env, docker_client, session_id):
    env = make_env(options={"scratch": "volume"})
    got = env.run(scratch_probe, "b.txt", "volume!")
    assert got["mount"] == "/scratch"
    assert got["fstype"] != "overlay"
    assert env.metadata["scratch"] == "volume"
    volumes = docker_client.volumes.list(filters={"label": f"{SESSION_LABEL}={session_id}"})
    assert len(volumes) == 1
    env.stop()
    assert not docker_client.volumes.list(filters={"label": f"{SESSION_LABEL}={session_id}"})


def test_scratch_host_path_is_bind_mounted(make_env, tmp_path):
    env = make_env(options={"scratch": str(tmp_path)})
    got = env.run(scratch_probe, "c.txt", "from the container")
    assert got["mount"] == "/scratch"
    assert (tmp_path / "c.txt").read_text() == "from the container"
    assert env.metadata["scratch"] == "bind"


# --------------------------------------------------------------------------
# errors


def test_remote_exception_comes_back_with_its_traceback(env):
    with pytest.raises(RemoteError) as info:
        env.run(fail_inside, 42)
    err = info.value
    assert err.type_name == "ValueError"
    assert "bad value 42 inside the container" in err.remote_message
    assert "inner_helper_that_raises" in err.remote_traceback
    assert "test_container.py" in err.remote_traceback
    # The environment is still usable after a remote error.
    assert env.run(python_version)


def test_unknown_runtime_lists_the_daemon_runtimes(make_env, docker_client):
    env = make_env(options={"runtime": "no-such-runtime"}, start=False)
    with pytest.raises(EnvUnavailable) as info:
        env.start()
    msg = str(info.value)
    assert "no-such-runtime" in msg
    for name in docker_client.info()["Runtimes"]:
        assert name in msg
    assert "daemon.json" in msg and "--add-runtime" in msg


def test_explicit_runtime_runc(make_env, docker_client):
    if "runc" not in docker_client.info()["Runtimes"]:
        pytest.skip("dockerd has no runtime named runc")
    env = make_env(options={"runtime": "runc"}, name="runc")
    assert env.metadata["runtime"] == "runc"
    attrs = docker_client.api.inspect_container(env.metadata["container_id"])
    assert attrs["HostConfig"]["Runtime"] == "runc"


def test_crun_runtime(make_env, docker_client):
    if "crun" not in docker_client.info()["Runtimes"]:
        pytest.skip("dockerd has no crun runtime: run scripts/provision.sh to register it")
    env = make_env(options={"runtime": "crun"}, name="crun", start=False)
    try:
        env.start()
    except EnvUnavailable as exc:
        msg = str(exc)
        assert "crun" in msg and len(msg.splitlines()) == 1
        if "hybrid" in msg:  # crun 1.8 refuses cgroup v1 with controllers on the v2 mount
            pytest.skip(msg)
        raise
    assert env.metadata["runtime"] == "crun"
    assert env.run(probe_identity)["net"] == ["lo"]
    attrs = docker_client.api.inspect_container(env.metadata["container_id"])
    assert attrs["HostConfig"]["Runtime"] == "crun"


def test_no_daemon_says_how_to_start_one(make_env, tmp_path):
    url = f"unix://{tmp_path}/no-docker.sock"
    env = make_env(options={"docker_url": url}, start=False)
    with pytest.raises(EnvUnavailable) as info:
        env.start()
    msg = str(info.value)
    assert len(msg.splitlines()) == 1
    assert msg.startswith(f"no Docker daemon at {url}")
    assert url in msg and "dockerd --bridge=none --iptables=false" in msg and "provision.sh" in msg


def test_bad_options_are_rejected():
    cls = backend_class("container")
    ctx = RunContext(session_id="x", rootdir=ROOTDIR)
    with pytest.raises(ValueError, match="unknown option"):
        cls(EnvSpec("c", "container", {"imgae": "x"}), ctx)
    with pytest.raises(ValueError, match="scratch"):
        cls(EnvSpec("c", "container", {"scratch": "relative/dir"}), ctx)
    with pytest.raises(ValueError, match="needs image"):
        cls(EnvSpec("c", "container", {"python": "python3"}), ctx)


# --------------------------------------------------------------------------
# image mode


def test_image_without_python_is_reported(make_env, docker_client):
    tag = f"pytest-virtoverhead/test-nopython:{uuid.uuid4().hex[:8]}"
    _build_image(docker_client, {"/etc": None, "/etc/motd": "no python here\n"}, tag)
    try:
        env = make_env(options={"image": tag}, start=False)
        with pytest.raises(EnvUnavailable) as info:
            env.start()
        msg = str(info.value)
        assert tag in msg and "python3" in msg and "3.10" in msg
    finally:
        docker_client.images.remove(tag, force=True)


def test_missing_image_is_reported_without_pulling(make_env):
    env = make_env(options={"image": "pytest-virtoverhead/does-not-exist:never"}, start=False)
    with pytest.raises(EnvUnavailable, match="no image is ever pulled"):
        env.start()


def test_image_without_pytest_is_reported(make_env, python_images):
    env = make_env(options={"image": python_images["nopytest"]}, start=False)
    with pytest.raises(EnvUnavailable) as info:
        env.start()
    msg = str(info.value)
    assert "lacks pytest" in msg and python_images["nopytest"] in msg


def test_image_mode_runs_the_image_python(make_env, python_images):
    env = make_env(options={"image": python_images["pytest"], "scratch": "volume"})
    assert env.metadata["mode"] == "image"
    assert env.metadata["image"] == python_images["pytest"]
    assert env.metadata["executable"] == "/usr/bin/python3"
    import subprocess
    debian = subprocess.run(["/usr/bin/python3.11", "-c", "import platform; print(platform.python_version())"],
                            capture_output=True, text=True, check=True).stdout.strip()
    assert env.run(python_version) == debian
    inside = env.run(probe_identity)
    assert inside["net"] == ["lo"]
    assert env.run(try_write, os.path.join(ROOTDIR, "x")).startswith("OSError: errno 30")
    assert env.run(scratch_probe, "d.txt", "image")["mount"] == "/scratch"


# --------------------------------------------------------------------------
# leaks


def test_stop_removes_the_container_and_is_idempotent(make_env, docker_client, session_id):
    env = make_env()
    label = f"{SESSION_LABEL}={session_id}"
    assert len(docker_client.containers.list(all=True, filters={"label": label})) == 1
    env.stop()
    env.stop()
    env.backend.stop()
    assert not docker_client.containers.list(all=True, filters={"label": label})


def test_closing_the_stream_ends_the_container(make_env, docker_client, session_id):
    """What happens when the host process dies: stdin closes, the worker
    exits and the daemon removes the container (AutoRemove)."""
    import time

    env = make_env()
    label = f"{SESSION_LABEL}={session_id}"
    env.backend._transport.close_stdin()
    deadline = time.monotonic() + 20
    while docker_client.containers.list(all=True, filters={"label": label}) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not docker_client.containers.list(all=True, filters={"label": label})


def test_reap_removes_leftovers_of_dead_owners(docker_client, session_id):
    import subprocess

    from pytest_virtoverhead.envs.container.mirror import ensure_mirror_image

    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid that no longer runs
    host = socket.gethostname()
    labels_dead = {SESSION_LABEL: session_id, OWNER_LABEL: f"{host}:{dead.pid}", TEST_LABEL: "1"}
    labels_alive = {SESSION_LABEL: session_id, OWNER_LABEL: f"{host}:{os.getpid()}", TEST_LABEL: "1"}
    labels_elsewhere = {SESSION_LABEL: session_id, OWNER_LABEL: f"another-host-{session_id}:1", TEST_LABEL: "1"}
    image = ensure_mirror_image(docker_client)
    made = []
    try:
        for tag, labels in (("dead", labels_dead), ("alive", labels_alive), ("elsewhere", labels_elsewhere)):
            c = docker_client.containers.create(image.id, ["/nothing"], labels=labels, network_mode="none",
                                                name=f"virtoverhead-reaptest-{session_id}-{tag}")
            made.append(c)
        vol = docker_client.volumes.create(name=f"virtoverhead-reaptest-{session_id}", labels=labels_dead)
        ctx = RunContext(session_id="reaper", rootdir=ROOTDIR)
        removed = backend_class("container").reap(ctx)
        assert f"container virtoverhead-reaptest-{session_id}-dead" in removed
        assert f"volume {vol.name}" in removed
        left = {c.name for c in docker_client.containers.list(all=True, filters={"label": f"{SESSION_LABEL}={session_id}"})}
        assert left == {f"virtoverhead-reaptest-{session_id}-alive", f"virtoverhead-reaptest-{session_id}-elsewhere"}
    finally:
        for c in made:
            try:
                c.remove(force=True)
            except Exception:  # noqa: BLE001
                pass
        for v in docker_client.volumes.list(filters={"label": f"{SESSION_LABEL}={session_id}"}):
            v.remove(force=True)


# --------------------------------------------------------------------------
# through the plugin (its ``container`` fixture and --virt-compare)


PLUGIN_TEST = '''
import os, socket
import pytest

def identity():
    return {"hostname": socket.gethostname(), "net": sorted(os.listdir("/sys/class/net"))}

def test_fixture(container):
    inside = container.run(identity)
    assert inside["net"] == ["lo"]
    assert inside["hostname"] != socket.gethostname()
    assert container.metadata["mode"] == "mirror"
    assert container.metadata["runtime"]

@pytest.mark.virt(claims=[], rounds=2)
def test_marked():
    sum(range(1000))
'''


def test_plugin_fixture_and_compare(pytester, docker_client):
    import json

    pytester.makepyfile(test_plugin_container=PLUGIN_TEST)
    out = pytester.path / "virt.json"
    result = pytester.runpytest_subprocess(
        "--virt-envs=baremetal,container", "--virt-require=container",
        "--virt-compare", f"--virt-json={out}", "-q", "-rs",
    )
    result.assert_outcomes(passed=2)
    data = json.loads(out.read_text())
    meta = data["environments"]["container"]
    assert meta["kind"] == "container"
    assert meta["mode"] == "mirror" and meta["runtime"] and meta["image"]
    envs = {r["env"] for r in data["results"]}
    assert envs == {"baremetal", "container"}


def test_plugin_container_image_option(pytester, docker_client):
    tag = f"pytest-virtoverhead/test-nopython:{uuid.uuid4().hex[:8]}"
    _build_image(docker_client, {"/etc": None}, tag)
    try:
        pytester.makepyfile(test_plugin_container=PLUGIN_TEST)
        result = pytester.runpytest_subprocess(
            "-p", "no:cacheprovider", "--virt-envs=container", f"--virt-container-image={tag}",
            "-q", "-rs", "-k", "test_fixture",
        )
        result.assert_outcomes(skipped=1)
        result.stdout.fnmatch_lines([f"*{tag}*python3*"])
    finally:
        docker_client.images.remove(tag, force=True)


# --------------------------------------------------------------------------
# without the docker SDK


def test_module_does_not_import_docker_and_says_pip_install_without_it():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import pytest_virtoverhead.envs.container as c\n"
        "assert 'docker' not in sys.modules, 'docker imported eagerly'\n"
        "sys.modules['docker'] = None  # as if the SDK were not installed\n"
        "from pytest_virtoverhead.envs import EnvSpec, Environment, EnvUnavailable, RunContext\n"
        "env = Environment(c.ContainerBackend(EnvSpec('container', 'container', {}), RunContext('s', '.')))\n"
        "try:\n"
        "    env.start()\n"
        "except EnvUnavailable as exc:\n"
        "    print('UNAVAILABLE', exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOTDIR, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "UNAVAILABLE" in out.stdout and "pip install docker" in out.stdout


NAMED_TEST = '''
import os

def seccomp():
    with open("/proc/self/status") as f:
        return [l.split()[1] for l in f if l.startswith("Seccomp:")][0]

def scratch_fs():
    return os.environ["VIRTOVERHEAD_SCRATCH"]

def test_named(virt_envs):
    assert virt_envs["container"].run(seccomp) == "2"
    assert virt_envs["noseccomp"].run(seccomp) == "0"
    assert virt_envs["noseccomp"].metadata["seccomp"] == "unconfined"
    assert virt_envs["vol"].metadata["scratch"] == "volume"
    assert virt_envs["vol"].run(scratch_fs) == "/scratch"
'''


def test_plugin_named_environments_with_ini_options(pytester, docker_client):
    pytester.makeini(
        "[pytest]\n"
        "virt_envs = baremetal,container,noseccomp=container,vol=container\n"
        "virt_env_options =\n"
        "    noseccomp: seccomp=unconfined\n"
        "    vol: scratch=volume\n"
    )
    pytester.makepyfile(test_named=NAMED_TEST)
    result = pytester.runpytest_subprocess("--virt-require=container", "-q", "-rs")
    result.assert_outcomes(passed=1)


KILLED_HOST = '''
import sys, time
sys.path.insert(0, sys.argv[1])
from pytest_virtoverhead.envs import EnvSpec, Environment, RunContext, backend_class
ctx = RunContext(session_id=sys.argv[2], rootdir=sys.argv[1], memory_mb=256)
env = Environment(backend_class("container")(EnvSpec("container", "container", {}), ctx)).start()
print(env.metadata["container_id"], flush=True)
time.sleep(600)
'''


def test_killed_host_leaves_no_container(docker_client, session_id, tmp_path):
    """SIGKILL the process that owns a container: no stop(), no atexit. The
    attach connection closes, the worker reads EOF and AutoRemove cleans up."""
    import signal
    import subprocess
    import sys
    import time

    script = tmp_path / "host.py"
    script.write_text(KILLED_HOST)
    proc = subprocess.Popen([sys.executable, str(script), ROOTDIR, session_id], stdout=subprocess.PIPE, text=True)
    label = f"{SESSION_LABEL}={session_id}"
    try:
        cid = proc.stdout.readline().strip()
        assert cid, "the host process did not start its container"
        assert docker_client.containers.list(all=True, filters={"label": label})
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    deadline = time.monotonic() + 30
    while docker_client.containers.list(all=True, filters={"label": label}) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = docker_client.containers.list(all=True, filters={"label": label})
    for c in left:
        c.remove(force=True)
    assert not left


def test_concurrent_stops(make_env, docker_client, session_id):
    import threading

    env = make_env()
    threads = [threading.Thread(target=env.backend.stop) for _ in range(4)]
    for t in threads:
        t.start()
    env.stop()  # returns only once the container is gone, whoever removed it
    assert not docker_client.containers.list(all=True, filters={"label": f"{SESSION_LABEL}={session_id}"})
    for t in threads:
        t.join()
    env.backend.stop()
    assert not docker_client.containers.list(all=True, filters={"label": f"{SESSION_LABEL}={session_id}"})


RESOURCE_TEST = '''
import mmap
import os

import pytest

@pytest.mark.virt(claims=["container <= 10 * baremetal"], rounds=4)
def test_syscalls():
    for _ in range(30000):
        os.getppid()

@pytest.mark.virt(claims=["container <= 10 * baremetal"], rounds=4)
def test_pages():
    m = mmap.mmap(-1, 2048 * 4096)
    for i in range(0, 2048 * 4096, 4096):
        m[i] = 1
    m.close()
'''


def test_resources_in_a_real_container(pytester, docker_client):
    """Issue 24: counters measured inside the container reach the JSON and
    the "why" line (system time of a syscall loop, minor faults of touched pages)."""
    import json

    pytester.makepyfile(test_resources=RESOURCE_TEST)
    out = pytester.path / "virt.json"
    result = pytester.runpytest_subprocess(
        "--virt-envs=baremetal,container", "--virt-require=container", "--virt-compare",
        f"--virt-json={out}", "-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    data = json.loads(out.read_text())
    entries = {(r["test"].split("::")[-1], r["env"]): r for r in data["results"]}
    for env in ("baremetal", "container"):
        assert entries["test_syscalls", env]["resources"]["system_seconds"] > 0
        assert entries["test_pages", env]["resources"]["minor_faults"] >= 2048 * 0.95
    for claim in data["claims"]:
        assert claim["why"].startswith("why (measured per call, container vs baremetal): time ")
    result.stdout.fnmatch_lines(["*why (measured per call, container vs baremetal)*"])


def test_explain_with_real_ablations(pytester, docker_client):
    """Issue 24: --virt-explain runs a container with seccomp off and one
    with its scratch on a volume beside the container, in the same rounds,
    and reports each one's time over the container's with an interval."""
    import json

    pytester.makepyfile(test_explain=RESOURCE_TEST)
    out = pytester.path / "virt.json"
    result = pytester.runpytest_subprocess(
        "--virt-envs=baremetal,container", "--virt-require=container", "--virt-compare", "--virt-explain",
        "--virt-rounds=3", f"--virt-json={out}", "-q", "-p", "no:cacheprovider", "-k", "test_syscalls")
    result.assert_outcomes(passed=1)
    data = json.loads(out.read_text())
    envs = data["environments"]
    assert envs["container_noseccomp"]["seccomp"] == "unconfined"
    assert envs["container_volume"]["scratch"] == "volume"
    ablations = {e["env"]: e for e in data["explain"]["ablations"]}
    assert set(ablations) == {"container_noseccomp", "container_volume"}
    for e in ablations.values():
        lo, hi = e["ablated_ci"]
        assert lo <= e["ablated"] <= hi and e["parent"] == "container"
    result.stdout.fnmatch_lines(["explain (--virt-explain*", "*seccomp off (container_noseccomp): time x*"])
