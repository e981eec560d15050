"""Channel, pool and round runner against the real worker, fast: the
``fake`` environment kind of conftest.py runs it in a subprocess over a
socket pair (no image, no guest)."""

import os
import time

import pytest

from pytest_virtoverhead.envs import Environment, EnvSpec, EnvUnavailable, JobTimeout, RunContext, WorkerDied
from pytest_virtoverhead.envs.channel import Channel
from pytest_virtoverhead.envs.handle import call_fields
from pytest_virtoverhead.judge.claims import parse_claim
from pytest_virtoverhead.session import judging
from pytest_virtoverhead.session.config import Settings
from pytest_virtoverhead.session.pool import EnvironmentPool
from pytest_virtoverhead.session.rounds import Comparator


def context(tmp_path, **timeouts):
    return RunContext(session_id="fake-test", rootdir=str(tmp_path),
                      **{"startup_timeout": 30.0, "job_timeout": 30.0, **timeouts})


def fake_env(backend, tmp_path, name="a", options=None, **timeouts):
    return Environment(backend(EnvSpec(name, "fake", options or {}), context(tmp_path, **timeouts)))


@pytest.fixture
def env(fake_backend, tmp_path):
    env = fake_env(fake_backend, tmp_path).start()
    yield env
    env.stop(graceful=False)


# -- Channel ------------------------------------------------------------------


def test_channel_request_times_out_and_leaves_the_job_pending(fake_backend, tmp_path):
    backend = fake_backend(EnvSpec("a", "fake"), context(tmp_path))
    channel = Channel(backend.start(), "a")
    try:
        channel.wait_event("ready", 30)
        assert channel.request("call", timeout=30, **call_fields(os.getpid, (), {})) == backend.proc.pid
        t0 = time.monotonic()
        with pytest.raises(JobTimeout, match=r"'call' in environment 'a' did not finish within 0.3 s"):
            channel.request("call", timeout=0.3, **call_fields(time.sleep, (5,), {}))
        assert time.monotonic() - t0 < 2
        assert channel.pending is not None  # the worker may still be running it
    finally:
        channel.close()
        backend.kill()


def test_channel_wait_event_times_out_on_a_silent_worker(fake_backend, tmp_path):
    backend = fake_backend(EnvSpec("a", "fake", {"silent": "1"}), context(tmp_path))
    channel = Channel(backend.start(), "a")
    try:
        with pytest.raises(JobTimeout, match="did not say 'ready' within 0.3 s"):
            channel.wait_event("ready", 0.3)
    finally:
        channel.close()
        backend.kill()


def test_a_silent_worker_makes_the_environment_unavailable(fake_backend, tmp_path):
    env = fake_env(fake_backend, tmp_path, options={"silent": "1"}, startup_timeout=0.3)
    with pytest.raises(EnvUnavailable, match="started but its worker did not answer"):
        env.start()
    assert not env.running and env.backend.proc is None


def test_a_timed_out_job_recycles_the_worker(fake_backend, tmp_path):
    env = fake_env(fake_backend, tmp_path, job_timeout=0.3).start()
    try:
        first = env.run(os.getpid)
        with pytest.raises(JobTimeout):
            env.run(time.sleep, 5)
        assert env.run(os.getpid) != first  # a new worker serves the next job
        assert env.backend.starts == 2
    finally:
        env.stop(graceful=False)


def test_a_worker_that_dies_raises_worker_died_with_its_exit_code(env):
    first = env.run(os.getpid)
    with pytest.raises(WorkerDied, match="died during 'call'") as info:
        env.run(os._exit, 7)
    assert "fake worker exit code: 7" in info.value.diagnostics
    assert not env.running
    assert env.run(os.getpid) != first


def test_a_closed_stream_is_worker_died_before_writing(env):
    env._channel.transport.close()
    with pytest.raises(WorkerDied):
        env._channel.request("call", timeout=5, **call_fields(os.getpid, (), {}))


# -- EnvironmentPool ------------------------------------------------------------


def settings_for(*specs, **fields):
    return Settings(specs=[EnvSpec(n, "fake", o) for n, o in specs], baseline=specs[0][0], **fields)


def test_pool_starts_gets_and_stops_all(tmp_path, fake_backend):
    pool = EnvironmentPool(settings_for(("a", {}), ("b", {})), context(tmp_path))
    assert pool.start_all(["a", "b"]) == {}
    a = pool.get("a")
    assert a is pool.get("a") and a.running
    assert set(pool.started()) == {"a", "b"}
    procs = [e.backend.proc for e in pool.started().values()]
    pool.stop_all()
    assert all(p.poll() == 0 for p in procs)  # asked to shut down, not killed
    assert not a.running
    with pytest.raises(EnvUnavailable, match="the session is ending"):
        pool.get("a")


def test_pool_reports_a_start_failure_instead_of_raising(tmp_path, fake_backend):
    pool = EnvironmentPool(settings_for(("a", {}), ("gone", {"unavailable": "no such thing here"}),
                                        ("buggy", {"crash": "backend bug"})), context(tmp_path))
    try:
        reasons = pool.start_all(["a", "gone", "buggy"])
        assert reasons == {"gone": "no such thing here",
                           "buggy": "environment 'buggy' could not start: RuntimeError: backend bug"}
        assert pool.get("a").running
        with pytest.raises(EnvUnavailable, match="no such thing here"):
            pool.get("gone")  # remembered: not started again
        assert pool.failure("buggy") == reasons["buggy"]
        assert pool.metadata()["gone"]["unavailable"] == "no such thing here"
    finally:
        pool.stop_all()


# -- the round runner -----------------------------------------------------------


def test_comparator_runs_rounds_in_two_environments_and_judges_the_claim(tmp_path, fake_backend):
    (tmp_path / "test_item.py").write_text("import time\n\ndef test_sleep():\n    time.sleep(0.002)\n")
    settings = settings_for(("a", {}), ("b", {}), rounds=3, warmup=1, processes=1, calls=2, seed=5)
    pool = EnvironmentPool(settings, context(tmp_path))
    nodeid = "test_item.py::test_sleep"
    try:
        claims = [parse_claim("b <= 3 * a")]
        result = Comparator(settings, pool, (nodeid,)).run(nodeid, ["a", "b"], claims, 3)
    finally:
        pool.stop_all()
    assert result.failure is None and result.unavailable == {}
    assert result.rounds == 3 and len(result.used_rounds) == 3
    assert result.calls == {"b": 2} and result.process_counts == {"a": 1, "b": 1}
    ratio, (low, high) = result.ratios["b"]
    assert 0.5 < low <= ratio <= high < 2
    assert result.evaluated and result.claims == []  # the round runner measures; judging judges
    [claim] = judging.judge(result, judging.Claims(claims), judging.context(settings, {}))
    assert claim.verdict == "pass", claim


def test_comparator_marks_an_environment_that_cannot_start_unavailable(tmp_path, fake_backend):
    (tmp_path / "test_item.py").write_text("def test_nothing():\n    pass\n")
    settings = settings_for(("a", {}), ("b", {"unavailable": "not here"}), rounds=2, warmup=0, processes=1,
                            calls=1)
    pool = EnvironmentPool(settings, context(tmp_path))
    nodeid = "test_item.py::test_nothing"
    try:
        result = Comparator(settings, pool, (nodeid,)).run(nodeid, ["a", "b"], [parse_claim("b <= 3 * a")], 2)
    finally:
        pool.stop_all()
    assert result.unavailable == {"b": "not here"}
    assert result.rounds == 2 and result.ratios == {}


# -- through the plugin -----------------------------------------------------------


def test_a_backend_that_crashes_at_start_is_reported_not_an_internal_error(pytester, fake_backend):
    pytester.makeini("[pytest]\nvirt_env_options =\n    buggy: crash=backend-bug\n")
    pytester.makepyfile("""
        import pytest

        @pytest.mark.virt(claims=["buggy <= 2 * baremetal"])
        def test_item():
            pass
    """)
    result = pytester.runpytest("--virt-compare", "--virt-envs=baremetal,buggy=fake", "--virt-rounds=2")
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*buggy*could not start: RuntimeError: backend-bug*"])
