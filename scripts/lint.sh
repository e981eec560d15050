#!/usr/bin/env bash
# The lint gate, one command for .ci/run, tox -e lint and a developer:
# ruff (rules in pyproject.toml [tool.ruff]), mypy ([tool.mypy]) and the
# import contracts ([tool.importlinter]). Uses .venv's tools when there is a
# .venv (scripts/bootstrap.sh installs the lint extra), else those on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=""
if [[ -z ${VIRTUAL_ENV:-} && -x .venv/bin/ruff ]]; then bin=.venv/bin/; fi
status=0
echo "lint: ruff" >&2
"${bin}ruff" check pytest_virtoverhead tests benchmarks examples || status=1
echo "lint: mypy" >&2
"${bin}mypy" || status=1
echo "lint: import contracts" >&2
"${bin}lint-imports" || status=1
echo "lint: module size (450 lines at most)" >&2
long=$(find pytest_virtoverhead -name '*.py' -exec awk 'END { if (NR > 450) print FILENAME ": " NR " lines" }' {} \;)
if [[ -n $long ]]; then echo "$long" >&2; status=1; fi
exit $status
