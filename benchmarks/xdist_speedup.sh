#!/usr/bin/env bash
# pytest -n 2 --virt-cpus=0-1 against a serial run of the same 16 call-based
# tests (baremetal, container), alternating, twice each way; prints each
# run's wall time, load average before and after, steal ticks and the tests
# judged.   Usage: bash benchmarks/xdist_speedup.sh [repetitions]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
py=$root/.venv/bin/python
dir=$(mktemp -d /tmp/xdist-speedup-XXXXXX)
trap 'rm -rf "$dir"' EXIT
cat > "$dir/test_spin.py" <<'PY'
import pytest

def spin(n=95000):
    s = 0
    for i in range(n):
        s += i * i % 7
    return s

@pytest.mark.parametrize("i", range(16))
@pytest.mark.virt(claims=["container ~= baremetal +- 5%"])
def test_spin(i):
    spin()
PY
steal() { awk '/^cpu /{print $9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat; }
for _ in $(seq "${1:-2}"); do
  for mode in serial parallel; do
    extra=(); [[ $mode == parallel ]] && extra=(-n 2 --virt-cpus=0-1)
    s0=$(steal); l0=$(cut -d' ' -f1 /proc/loadavg); t0=$(date +%s.%N)
    (cd "$dir" && "$py" -m pytest -q -p no:cacheprovider test_spin.py --virt-compare \
        --virt-envs=baremetal,container "${extra[@]}" --virt-json="$dir/$mode.json" >"$dir/$mode.log" 2>&1) || true
    t1=$(date +%s.%N); s1=$(steal); l1=$(cut -d' ' -f1 /proc/loadavg)
    judged=$("$py" -c "import json,sys; d=json.load(open(sys.argv[1])); print(len(d['tests']), 'tests,', sum(c['verdict'] in ('pass','fail','inconclusive') for c in d['claims']), 'claims judged')" "$dir/$mode.json")
    echo "$mode: $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}') s, load $l0 -> $l1, steal $(echo "$s0 $s1" | awk '{print $3-$1" of "$4-$2}') ticks, $judged; $(tail -1 "$dir/$mode.log")"
  done
done
