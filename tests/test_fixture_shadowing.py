"""A project fixture named like one of the plugin's environment fixtures
shadows it for its tests (pytest's rule: the closest definition wins); the
plugin says so when it is in use, and virt_envs still hands out the
environment."""

import pytest

CONFTEST = """
    import pytest

    @pytest.fixture
    def container():
        return "testcontainers-like"
"""


def test_a_shadowed_environment_fixture_is_named_with_its_definition(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile("""
        def test_mine(container):
            assert container == "testcontainers-like"

        def test_env(virt_envs):
            assert "baremetal" in virt_envs
    """)
    result = pytester.runpytest_subprocess("--virt-envs=baremetal", "-p", "no:cacheprovider", "-W", "default")
    result.assert_outcomes(passed=2)
    out = result.stdout.str()
    assert ("PytestConfigWarning: the fixture 'container' defined at " in out
            and "conftest.py:" in out), out
    assert ("shadows pytest-virtoverhead's 'container' fixture in 1 test(s): they get that fixture, not an "
            "environment; virt_envs['container'] is the environment") in out


def test_no_warning_when_nothing_shadows(pytester):
    pytester.makepyfile("""
        def test_env(baremetal):
            pass
    """)
    result = pytester.runpytest_subprocess("--virt-envs=baremetal", "-p", "no:cacheprovider", "-W", "default")
    result.assert_outcomes(passed=1)
    assert "shadows pytest-virtoverhead" not in result.stdout.str()


@pytest.mark.parametrize("args", [[], ["--virt-envs=baremetal"]])
def test_an_unused_shadow_is_not_reported(pytester, args):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile("def test_a(): pass")
    result = pytester.runpytest_subprocess(*args, "-p", "no:cacheprovider", "-W", "default")
    result.assert_outcomes(passed=1)
    assert "shadows pytest-virtoverhead" not in result.stdout.str()
