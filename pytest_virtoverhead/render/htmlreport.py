"""``--virt-report=PATH.html``: one self-contained HTML file.

Rendered from the ``--virt-json`` document (the public schema), so a saved
run can be rendered again later (``pytest-virtoverhead report RUN.json``).
Per test: one figure with the ratio to the baseline and its confidence
interval for each environment, the claims' thresholds drawn in and coloured
by verdict, beside the distribution of the samples per environment; a table
of the numbers and the claims. Then the environments' metadata. Also the
``pytest-virtoverhead history`` page.

This module shapes the pages' data; the figures are :mod:`.htmlfigures`,
embedded as base64 PNG; the markup is the Jinja2 templates
``templates/*.html.j2`` (package data, rendered by :mod:`.templating`,
which escapes every value). A page has no external CSS, JavaScript or
fonts, so it reads offline. matplotlib and Jinja2 are the optional extra
``report``.
"""

from __future__ import annotations

import base64
import time
from typing import Any

from ..fsutil import atomic_write
from ..judge.textfmt import by_severity, env_label, host_envs, method_line, worst_verdict
from .htmlfigures import figure_png

INSTALL_HINT = "pip install pytest-virtoverhead[report]"

#: Environment metadata shown as columns; the rest goes in a details list.
#: (column label, metadata keys: the first one present is shown).
ENV_COLUMNS = [
    ("kind", ("kind",)), ("acceleration", ("accel",)), ("runtime", ("runtime",)), ("image", ("image",)),
    ("kernel", ("guest_kernel_version", "kernel")), ("CPU set", ("cpus_pinned", "cpuset_cpus", "cpuset")),
    ("vCPUs", ("vcpus",)), ("CPU quota", ("cpu_quota",)),
    ("memory limit MiB", ("memory_mb", "memory_limit_mb", "mem_limit_mb")), ("start s", ("start_seconds",)),
]


class ReportUnavailable(RuntimeError):
    """matplotlib or Jinja2 is missing."""


def require_matplotlib(what: str = "--virt-report") -> None:
    """Raise ReportUnavailable, saying how to get it, unless matplotlib (the
    figures) and Jinja2 (the page's templates) both import. (The name is
    older than the templates; callers check the whole ``report`` extra.)
    ``what`` names the option or command in the message."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ReportUnavailable(
            f"{what} needs matplotlib, which is not installed: {INSTALL_HINT}") from None
    from . import templating

    try:
        templating.environment()
    except templating.TemplatesUnavailable as exc:
        raise ReportUnavailable(f"{what}: {exc}") from None


# --------------------------------------------------------------------------
# data helpers


def _tests(data: dict[str, Any]) -> list[dict[str, Any]]:
    """One dict per test: its results by env, its claims, its outcome."""
    tests: dict[str, dict[str, Any]] = {}
    for t in data.get("tests", []):
        tests[t["test"]] = {"test": t["test"], "envs": list(t.get("envs") or []), "outcome": t.get("outcome"),
                            "error": t.get("error") or t.get("skipped"), "unavailable": t.get("unavailable") or {},
                            "results": {}, "claims": [], "disturbed": t.get("disturbed") or 0,
                            "retries": t.get("retries") or 0, "calls": t.get("calls")}
    for r in data.get("results", []):
        t = tests.setdefault(r["test"], {"test": r["test"], "envs": [], "outcome": None, "error": None,
                                         "unavailable": {}, "results": {}, "claims": []})
        t["results"][r["env"]] = r
        if r["env"] not in t["envs"]:
            t["envs"].append(r["env"])
    for c in data.get("claims", []):
        if c["test"] in tests:
            tests[c["test"]]["claims"].append(c)
    return list(tests.values())


# --------------------------------------------------------------------------
# HTML: the context of templates/report.html.j2 (markup lives there)


def _first(meta: dict[str, Any], keys: tuple[str, ...]) -> tuple[str, Any]:
    for key in keys:
        if meta.get(key) not in (None, "", [], {}):
            return key, meta[key]
    return keys[0], None


def _env_view(environments: dict[str, Any]) -> dict[str, Any]:
    """The environments table: the columns some environment has a value
    for, one row per environment."""
    columns = [(label, keys) for label, keys in ENV_COLUMNS
               if any(_first(m or {}, keys)[1] is not None for m in environments.values())]
    rows = []
    for name, meta in environments.items():
        meta = meta or {}
        cells = []
        for _, keys in columns:
            key, value = _first(meta, keys)
            if isinstance(value, list):
                value = ",".join(map(str, value))
            cells.append({"text": value if value not in (None, "") else "-",
                          "reason": meta.get("accel_reason") if key == "accel" else None})
        rows.append({"name": name, "cells": cells,
                     "unavailable": str(meta["unavailable"]).splitlines()[0] if meta.get("unavailable") else None,
                     "metadata": list(meta.items())})
    return {"columns": [label for label, _ in columns], "rows": rows}


def _claim_view(c: dict[str, Any]) -> dict[str, Any]:
    ci = list(c.get("ci") or []) + [None, None]
    unit = c.get("unit", "ratio")
    return {"verdict": c.get("verdict"), "claim": c.get("claim"), "unit": unit, "ratio": c.get("ratio"),
            "ci": ci[:2], "quantity": c.get("quantity") or c.get("env"), "p_value": c.get("p_value"),
            "rounds": c.get("rounds"), "processes": c.get("processes"), "reason": c.get("reason"),
            "waived": c.get("waived"), "waiver_expired": c.get("waiver_expired"), "why": c.get("why")}


def _test_view(test: dict[str, Any], baseline: str, environments: dict[str, Any], index: int) -> dict[str, Any]:
    png = figure_png(test, baseline, environments)
    rows = []
    for env in test["envs"]:
        r = test["results"].get(env) or {}
        samples = r.get("samples") or []
        row = {"label": env_label(env, environments.get(env)), "measured": bool(samples),
               "verdict": worst_verdict(c["verdict"] for c in test["claims"] if c.get("env") == env)}
        if samples:
            rate = r.get("rate")
            row.update({"n": len(samples), "median": r.get("median"), "baseline": env == baseline,
                        "ratio": r.get("ratio"), "ci": (list(r.get("ci") or []) + [None, None])[:2],
                        "rate": {"value": rate["value"], "unit": rate["unit"]} if rate else None})
        else:
            why = test["unavailable"].get(env) or r.get("unavailable") or r.get("error") or "not measured"
            row["why"] = str(why).splitlines()[0]
        rows.append(row)
    return {"index": index, "test": test["test"], "outcome": test.get("outcome"),
            "png": base64.b64encode(png).decode() if png is not None else None, "rows": rows,
            "show_rate": any((test["results"].get(e) or {}).get("rate") for e in test["envs"]),
            "claims": [_claim_view(c) for c in test["claims"]], "disturbed": test.get("disturbed"),
            "retries": test.get("retries"), "error": test.get("error")}


def _meta(data: dict[str, Any], baseline: str, environments: dict[str, Any]) -> list[dict[str, Any]]:
    """The line under the title: baseline, seed, rounds, ... (kinds the
    template's ``meta_item`` knows)."""
    meta: list[dict[str, Any]] = [{"kind": "baseline", "value": baseline}]
    for key in ("seed", "rounds", "session"):
        if data.get(key) is not None:
            meta.append({"kind": "text", "text": f"{key} {data[key]}"})
    meta.append({"kind": "text", "text": f"written {data.get('written') or time.strftime('%Y-%m-%d %H:%M:%S')}"})
    machines = data.get("machines")
    if isinstance(machines, dict) and len(machines) > 1:
        how = "merged from" if data.get("merged") else "measured on"  # else: xdist workers on several hosts
        meta.append({"kind": "text", "text": f"{how} {len(machines)} machines: {', '.join(machines)}"})
    elif isinstance(data.get("machine"), dict) and data["machine"].get("name"):
        meta.append({"kind": "text", "text": f"machine {data['machine']['name']}"})
    stat = data.get("statistics") or {}
    if stat.get("processes"):
        meta.append({"kind": "text", "text": f"{stat['processes']} worker processes per environment, calls per "
                                             f"round {stat.get('calls')}, confidence {stat.get('confidence')}"})
    noise = data.get("noise") or {}
    if noise.get("disturbed_rounds"):
        meta.append({"kind": "text", "text": f"noise: {noise['disturbed_rounds']} disturbed round(s), "
                                             f"{noise.get('retried_rounds')} retried"})
    if data.get("interrupted") or data.get("aborted") is True:
        meta.append({"kind": "interrupted"})
    host = data.get("host") or {}
    if host.get("virtual"):
        meta.append({"kind": "host", "names": host_envs(environments), "label": host.get("label"),
                     "evidence": list(host.get("evidence") or [])})
    return meta


def render_html(data: dict[str, Any], *, title: str = "pytest-virtoverhead report") -> str:
    """The whole page, from a ``--virt-json`` document: the numbers and
    figures are shaped here, the markup is ``templates/report.html.j2``."""
    require_matplotlib()
    from . import footprinthtml, templating

    baseline = data.get("baseline") or "baremetal"
    environments = data.get("environments") or {}
    tests = _tests(data)
    counts: dict[str, int] = {}
    for c in data.get("claims", []):
        counts[c["verdict"]] = counts.get(c["verdict"], 0) + 1
    return templating.render(
        "report.html.j2", title=title, baseline=baseline, meta=_meta(data, baseline, environments),
        n_tests=len(tests), verdict_counts=by_severity(counts),
        tests=[_test_view(t, baseline, environments, i) for i, t in enumerate(tests)],
        environments=_env_view(environments), data=data, footprint=footprinthtml.view(data),
        method_line=method_line(data.get("verdict_method")))


def write_report(path: str, data: dict[str, Any]) -> None:
    """Render and write atomically."""
    atomic_write(path, render_html(data))
