"""The plugin costs nothing when off: pytest imports its entry module in every
run of every project where it is installed, so that module imports nothing
of the package beyond what registering options, the marker and the fixtures
needs; the rest loads on --virt-compare, a --virt-* option or ini key, or
the first use of a virt fixture."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ["pytest_virtoverhead.session.config", "pytest_virtoverhead.judge.claims", "pytest_virtoverhead.session.pool", "pytest_virtoverhead.session.rounds",
         "pytest_virtoverhead.results", "pytest_virtoverhead.session.verdicts",
         "pytest_virtoverhead.judge.stats", "pytest_virtoverhead.render.report", "pytest_virtoverhead.render.htmlreport",
         "pytest_virtoverhead.envs", "pytest_virtoverhead.envs.base", "pytest_virtoverhead.render.benchjson",
         "numpy", "scipy", "docker", "libvirt"]


def _loaded_after(code: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys, json\n"
                          "print(json.dumps(sorted(m for m in sys.modules if m.startswith('pytest_virtoverhead') "
                          "or m in ('numpy', 'scipy', 'docker', 'libvirt'))))"],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_entry_module_imports_nothing_heavy():
    loaded = _loaded_after("import pytest_virtoverhead.plugin")
    assert not [m for m in HEAVY if m in loaded], loaded


def test_help_text_constants_match_their_sources():
    from pytest_virtoverhead import plugin
    from pytest_virtoverhead.envs import KINDS
    from pytest_virtoverhead.render import htmlreport
    from pytest_virtoverhead.session.config import DEFAULT_ENVS

    assert plugin.HELP_KINDS == ", ".join(KINDS)
    assert plugin.HELP_DEFAULT_ENVS == DEFAULT_ENVS
    assert plugin.HELP_REPORT_INSTALL == htmlreport.INSTALL_HINT


def test_a_run_without_options_loads_nothing_more(pytester, monkeypatch):
    monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)  # the suite's own --virt-* defaults
    pytester.makepyfile("""
        import sys
        import pytest

        @pytest.mark.virt(claims=["container <= 1.05 * baremetal"])
        def test_a():
            heavy = [m for m in ("pytest_virtoverhead.session.state", "pytest_virtoverhead.session.virtsession",
                                 "pytest_virtoverhead.session.rounds", "pytest_virtoverhead.session.config",
                                 "pytest_virtoverhead.judge.claims", "numpy", "scipy") if m in sys.modules]
            assert heavy == [], sorted(m for m in sys.modules if m.startswith("pytest_virt"))
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_a_run_without_options_calls_no_hook_of_the_plugin(pytester, monkeypatch):
    """Zero cost when off: apart from registering options, the marker and the
    fixtures (and pytest_configure deciding that), no hook of the plugin is
    registered, so pytest calls none per test."""
    monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)
    pytester.makeconftest("""
        def pytest_collection_finish(session):
            pm = session.config.pluginmanager
            mine = sorted(h for p in pm.get_plugins() if getattr(p, "__name__", "").startswith("pytest_virtoverhead")
                          for h in dir(p) if h.startswith("pytest_"))
            print("VIRT-HOOKS", mine)
    """)
    pytester.makepyfile("def test_a(): pass")
    result = pytester.runpytest_subprocess("-s", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    # pytest_xdist_auto_num_workers: called once per run, and only under -n auto.
    result.stdout.fnmatch_lines(["VIRT-HOOKS ['pytest_addoption', 'pytest_configure', 'pytest_xdist_auto_num_workers']"])


def test_a_fixture_loads_the_rest_on_first_use(pytester, monkeypatch):
    monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)
    pytester.makepyfile("""
        import os

        def test_a(baremetal):
            assert baremetal.run(os.getpid) != os.getpid()

        def test_b(pytestconfig, baremetal):
            # the session's hooks are registered on the fixture's first use
            assert pytestconfig.pluginmanager.get_plugin("virtoverhead-session") is not None
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


@pytest.mark.parametrize("args", [["--virt-compare"], ["--virt-envs=baremetal"]])
def test_options_still_load_at_configure(pytester, args):
    pytester.makepyfile("def test_a(): pass")
    result = pytester.runpytest_subprocess(*args, "--virt-baseline=nope", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
