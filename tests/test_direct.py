"""Direct connections from the host to worker processes (envs/direct.py):
a process of the bare host takes its requests over its own socket once its
session is open; one that dies is named by its environment's worker as
before; the environment's worker dying ends them all; without the socket
(VIRTOVERHEAD_NO_DIRECT=1) everything goes through the worker."""

import os
import signal
import socket
import threading
import time

import pytest

from pytest_virtoverhead.envs import backend_class
from pytest_virtoverhead.envs.base import EnvSpec, RunContext
from pytest_virtoverhead.envs.direct import DirectChannel, Listener
from pytest_virtoverhead.envs.errors import JobTimeout, WorkerDied
from pytest_virtoverhead.envs.handle import Environment
from pytest_virtoverhead.wire.protocol import FrameDecoder, encode

TEST = "import time\n\ndef test_a():\n    pass\n\ndef test_sleep():\n    time.sleep(30)\n"
NODE = "test_d.py::test_a"


@pytest.fixture
def env(tmp_path, monkeypatch):
    (tmp_path / "test_d.py").write_text(TEST)
    monkeypatch.chdir(tmp_path)
    ctx = RunContext(session_id="direct-test", rootdir=str(tmp_path), startup_timeout=60, job_timeout=60)
    environment = Environment(backend_class("baremetal")(EnvSpec("bm", "baremetal"), ctx))
    environment.start()
    yield environment
    environment.stop()


def _prepare(env, *slots):
    failed = env.prepare({s: {} for s in slots}, (NODE, "test_d.py::test_sleep"), ("-p", "no:cacheprovider"))
    assert failed == {}


def test_processes_take_requests_over_their_own_connection(env):
    _prepare(env, 1, 2)
    assert sorted(env._links.by_slot) == [1, 2]
    assert env.metadata["request_path"] == {"direct": [1, 2], "relay": []}
    for slot in (1, 2):
        out = env.run_item(NODE, (NODE, "test_d.py::test_sleep"), ("-p", "no:cacheprovider"), proc=slot)
        assert out["outcome"] == "passed" and out["pid"] == env.processes[slot]


def test_a_killed_process_is_named_with_its_signal(env):
    _prepare(env, 1)
    os.kill(env.processes[1], signal.SIGKILL)
    with pytest.raises(WorkerDied, match=r"worker process 1 \(pid \d+\) exited \(killed by SIGKILL\)"):
        env.run_item(NODE, (NODE, "test_d.py::test_sleep"), ("-p", "no:cacheprovider"), proc=1)


def test_the_environments_worker_dying_ends_its_processes(env):
    _prepare(env, 1)
    child = env.processes[1]
    env.backend.proc.kill()
    deadline = time.monotonic() + 10
    while not env._channel.eof and time.monotonic() < deadline:
        time.sleep(0.05)
    with pytest.raises(WorkerDied, match="the worker in environment 'bm' died during 'item'"):
        env.run_item(NODE, (NODE, "test_d.py::test_sleep"), ("-p", "no:cacheprovider"), proc=1)
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)


def test_stop_ends_the_processes_at_once(env):
    _prepare(env, 1, 2)
    pids = list(env.processes.values())
    t0 = time.monotonic()
    env.stop()
    assert time.monotonic() - t0 < 4  # not the worker's 5 s wait per process
    assert not any(_alive(p) for p in pids)


def test_without_the_socket_requests_go_through_the_worker(tmp_path, monkeypatch):
    monkeypatch.setenv("VIRTOVERHEAD_NO_DIRECT", "1")
    (tmp_path / "test_d.py").write_text(TEST)
    monkeypatch.chdir(tmp_path)
    ctx = RunContext(session_id="direct-test", rootdir=str(tmp_path), startup_timeout=60, job_timeout=60)
    environment = Environment(backend_class("baremetal")(EnvSpec("bm", "baremetal"), ctx))
    try:
        environment.start()
        _prepare(environment, 1)
        assert environment._links.by_slot == {}
        assert environment.metadata["request_path"] == {"direct": [], "relay": [1]}
        out = environment.run_item(NODE, (NODE,), ("-p", "no:cacheprovider"), proc=1)
        assert out["outcome"] == "passed"
    finally:
        environment.stop()


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


# -- the listener and the channel, with a hand-made peer --------------------


def _peer(path, token, replies):
    """Connect, say ``token``, answer each request with ``replies(msg)``."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    sock.sendall(encode({"token": token}))
    decoder = FrameDecoder()

    def serve():
        try:
            while True:
                data = sock.recv(65536)
                if not data:
                    return
                for msg in decoder.feed(data):
                    out = replies(msg)
                    if out is None:
                        sock.close()
                        return
                    sock.sendall(encode(out))
        except OSError:
            return  # the host closed its end (the listener at the end of a test)

    threading.Thread(target=serve, daemon=True).start()
    return sock


def test_the_listener_hands_each_connection_to_its_token():
    listener = Listener()
    try:
        _peer(listener.path, "b", lambda m: {"id": m["id"], "ok": True, "result": "b"})
        _peer(listener.path, "a", lambda m: {"id": m["id"], "ok": True, "result": "a"})
        a = DirectChannel(listener.take("a", 5), "e", 1)
        b = DirectChannel(listener.take("b", 5), "e", 2)
        assert (a.request("x"), b.request("x")) == ("a", "b")
        with pytest.raises(JobTimeout):
            listener.take("nobody", 0.2)
    finally:
        listener.close()
    assert not os.path.exists(listener.dir)


def test_the_channel_skips_events_and_stale_replies_and_sees_the_end():
    listener = Listener()
    try:
        def replies(msg):
            if msg["op"] == "quit":
                return None
            return {"id": msg["id"], "ok": True, "result": msg["op"]}

        _peer(listener.path, "t", replies)
        chan = DirectChannel(listener.take("t", 5), "e", 3)
        assert chan.request("hello") == "hello"
        with pytest.raises(WorkerDied, match="worker process 3 in 'e' closed its connection during 'quit'"):
            chan.request("quit", timeout=5)
        with pytest.raises(WorkerDied, match="is gone"):
            chan.request("again")
    finally:
        listener.close()


def test_a_request_that_outlives_its_timeout():
    listener = Listener()
    try:
        _peer(listener.path, "slow", lambda m: (time.sleep(1), {"id": m["id"], "ok": True})[1])
        chan = DirectChannel(listener.take("slow", 5), "e", 1)
        with pytest.raises(JobTimeout, match="'x' in environment 'e' did not finish within 0.2 s"):
            chan.request("x", timeout=0.2)
        assert chan.pending is not None
    finally:
        listener.close()
