"""benchargs: which pytest-benchmark options of the host's command line
reach the worker processes' pytest sessions."""

from pytest_virtoverhead.session.benchargs import timing_args


def test_values_in_both_forms_and_flags_pass():
    args = ["-q", "--benchmark-max-time=0.2", "--benchmark-min-rounds", "3", "tests/x.py",
            "--benchmark-disable-gc", "--virt-compare"]
    assert timing_args(args) == ["--benchmark-max-time=0.2", "--benchmark-min-rounds", "3",
                                 "--benchmark-disable-gc"]


def test_host_only_options_stay():
    args = ["--benchmark-json=out.json", "--benchmark-autosave", "--benchmark-save", "x",
            "--benchmark-compare", "--benchmark-histogram", "--benchmark-columns=min"]
    assert timing_args(args) == []


def test_warmup_takes_its_value_only_when_argparse_would():
    assert timing_args(["--benchmark-warmup", "on", "t.py"]) == ["--benchmark-warmup=on"]
    assert timing_args(["--benchmark-warmup", "--benchmark-max-time", "1"]) == [
        "--benchmark-warmup", "--benchmark-max-time", "1"]
    assert timing_args(["--benchmark-warmup"]) == ["--benchmark-warmup"]
    assert timing_args(["--benchmark-warmup=off"]) == ["--benchmark-warmup=off"]


def test_a_value_option_last_without_its_value_is_left_out():
    assert timing_args(["--benchmark-max-time"]) == []
