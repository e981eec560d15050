"""Issue 16's networking row: the loopback TCP round-trip workload (on the
host here; tests/integration/test_footprint_envs.py runs it in a container and
a VM, where lo is the only interface)."""

import pytest

from pytest_virtoverhead.workloads import loopback


def test_round_trips_over_lo():
    out = loopback.tcp_round_trip(n=50, size=16)
    assert out["unit"] == "round trips/s" and out["amount"] == 50
    assert out["rate"] > 0 and out["us_per_round_trip"] == pytest.approx(out["seconds"] / 50 * 1e6)
    assert out["loopback"]["up"] is True and "lo" in out["loopback"]["interfaces"]


def test_only_loopback_addresses():
    with pytest.raises(ValueError, match="loopback address"):
        loopback.tcp_round_trip(n=1, host="10.0.0.1")


def test_records_work_for_the_rate_column(pytester):
    pytester.makepyfile("""
        from pytest_virtoverhead.workloads import loopback
        from pytest_virtoverhead.guest import work

        def test_rt():
            loopback.tcp_round_trip(n=20)
    """)
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)
