"""textfmt: the one place for numbers, labels, verdict order, plain-text
tables and NaN cleaning that every renderer uses."""

import json
import math
import subprocess
import sys

from pytest_virtoverhead.judge.textfmt import (
    by_severity,
    change,
    env_label,
    host_envs,
    interval,
    json_safe,
    seconds,
    seconds_scale,
    text_table,
    worst_verdict,
)


def test_json_safe_replaces_every_non_finite_float():
    data = {"a": math.nan, "b": [1.0, math.inf, (-math.inf, 2)], "c": {"d": 3, 4: "nan"}, "f": None}
    clean = json_safe(data)
    assert clean == {"a": None, "b": [1.0, None, [None, 2]], "c": {"d": 3, "4": "nan"}, "f": None}
    assert json_safe(math.nan) is None and json_safe(1.5) == 1.5
    json.dumps(clean, allow_nan=False)


def test_verdict_order_one_rule():
    assert worst_verdict(["pass", "skipped", "inconclusive"]) == "inconclusive"
    assert worst_verdict(["pass", "fail", "inconclusive"]) == "fail"
    assert worst_verdict(["pass", "later-kind"]) == "later-kind"  # unknown: after fail, before inconclusive
    assert worst_verdict([]) is None
    assert by_severity({"pass": 3, "skipped": 1, "fail": 2, "x": 1, "inconclusive": 4}) == [
        ("fail", 2), ("x", 1), ("inconclusive", 4), ("pass", 3), ("skipped", 1)]


def test_env_label_one_rule():
    assert env_label("vm", {"kind": "vm", "accel": "tcg"}) == "vm [tcg]"
    assert env_label("box", {"kind": "container", "accel": "tcg"}) == "box"
    assert env_label("vm", None) == "vm"
    assert host_envs({"control": {"kind": "baremetal"}, "vm": {"kind": "vm"}, "host": {"kind": "baremetal"}}) == [
        "control", "host"]
    assert host_envs({"vm": {"kind": "vm"}}) == host_envs(None) == ["baremetal"]


def test_interval_and_scale():
    assert interval((1.0, 1.25)) == "[1.000, 1.250]"
    assert interval([0.002, None], seconds) == "[2 ms, -]"
    assert interval([None, None]) == "[-, -]" and interval([None, None], empty="-") == "-"
    assert interval(None, empty="-") == "-"
    assert seconds_scale([0.002, 0.0005]) == (1e-3, "ms") and seconds_scale([]) == (1.0, "s")


def test_text_table():
    assert text_table(["a", "num"], [["xx", "1"], ["y", "22"]], {1}) == [
        "a   num", "--  ---", "xx    1", "y    22"]


def test_textfmt_imports_neither_pytest_nor_numpy():
    code = ("import sys, pytest_virtoverhead.judge.textfmt; "
            "print(sorted({'pytest', 'numpy', '_pytest'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out


def test_change():
    assert change(0.1) == "+10.0%" and change(-0.6) == "-60.0%"
    assert change(float("nan")) == "-" and change(None) == "-"


def test_a_newline_in_a_test_id_keeps_the_table_one_row_per_line():
    lines = text_table(["test", "median"], [["t.py::test_p[a\nb]", "1 ms"], ["t.py::test_q", "2 ms"]])
    assert len(lines) == 4
    assert lines[2].startswith("t.py::test_p[a\\nb]")
