"""An existing test suite, gated on container overhead.

These are ordinary tests of ordinary code. Gating them took one line each:
the ``virt`` marker with a claim. Without ``--virt-compare`` they run as they
always did; with it, each runs on the host and in a container, and a test
whose container time exceeds its claim fails:

    pytest examples/gating --virt-compare --virt-envs=baremetal,container -o virt_gate=true
"""

import json
import re
import sqlite3

import pytest

RECORDS = [{"id": i, "name": f"user{i}", "tags": ["a", "b", str(i % 7)]} for i in range(5000)]


@pytest.mark.virt(claims=["container <= 1.10 * baremetal"])
def test_json_round_trip():
    text = json.dumps(RECORDS)
    assert json.loads(text) == RECORDS


@pytest.mark.virt(claims=["container <= 1.10 * baremetal"])
def test_sort_by_key():
    ordered = sorted(RECORDS, key=lambda r: (r["tags"][2], -r["id"]))
    assert ordered[0]["tags"][2] == "0"
    assert len(ordered) == len(RECORDS)


@pytest.mark.virt(claims=["container <= 1.10 * baremetal"])
def test_regex_scan():
    text = " ".join(r["name"] for r in RECORDS) * 4
    assert len(re.findall(r"user(\d*7)\b", text)) == 4 * 500


@pytest.mark.virt(claims=["container <= 1.10 * baremetal"])
def test_sqlite_in_memory():
    db = sqlite3.connect(":memory:")
    db.execute("create table users (id integer primary key, name text)")
    db.executemany("insert into users values (?, ?)", [(r["id"], r["name"]) for r in RECORDS])
    assert db.execute("select count(*) from users where name like 'user1%'").fetchone()[0] == 1111
