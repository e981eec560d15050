#!/usr/bin/env bash
# Set up a working copy: system packages and daemons (when run as root), then
# a virtualenv in .venv with the plugin and its test dependencies.
# Idempotent; safe to run before every command.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $(id -u) -eq 0 ]]; then
    bash scripts/provision.sh
else
    echo "bootstrap: not root: skipping system packages and daemons (see scripts/provision.sh)" >&2
fi
PY=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
    "$PY" -m venv .venv
fi
stamp=.venv/.virtoverhead-installed
if [[ ! -f $stamp || pyproject.toml -nt $stamp ]]; then
    extras="test,container,docs,lint"
    if pkg-config --exists libvirt 2>/dev/null; then extras="$extras,vm"; fi
    .venv/bin/python -m pip install -q --upgrade pip >/dev/null
    .venv/bin/python -m pip install -q -e ".[${extras}]"
    touch "$stamp"
fi
