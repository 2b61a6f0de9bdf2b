#!/usr/bin/env bash
# Side-by-side ECDH-PSI benchmark: xnode against @openmined/psi.js (the harness
# in ../shared/peers), on the same gen_ids.py ID files, in one run.
#
#   scripts/bench-vs-psijs.sh                  # 10k and 100k per side
#   SIZES="10000" MODES="intersection cardinality" scripts/bench-vs-psijs.sh
#
# Needs node/npm and python3. Prints one JSON line per run and a ratio table.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
SIZES=${SIZES:-"10000 100000"}
MODES=${MODES:-"intersection cardinality"}
OVERLAP=${OVERLAP:-0.3}
SUITES=${SUITES:-"x25519-elligator2 ristretto255-sha512"}
PEERS=${PEERS:-$root/../shared/peers}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cp -r "$PEERS/." "$work/peers" && chmod -R u+w "$work/peers"
(cd "$work/peers" && npm ci --silent >/dev/null)
go build -o "$work/xnode" ./cmd/xnode

printf '%-8s %-13s %-20s %12s %12s %8s\n' n mode suite psijs_ms xnode_ms speedup
for n in $SIZES; do
  a=$work/a_$n.txt b=$work/b_$n.txt truth=$work/t_$n.txt
  python3 "$work/peers/gen_ids.py" --n-a "$n" --n-b "$n" --overlap "$OVERLAP" --seed 1 \
    --out-a "$a" --out-b "$b" --truth "$truth" >/dev/null
  for mode in $MODES; do
    pj=$(cd "$work/peers" && node psijs_bench.mjs --client "$a" --server "$b" --mode "$mode" \
      --ds raw --out "$work/out.txt" --truth "$truth")
    echo "psijs $pj" >&2
    for suite in $SUITES; do
      xn=$("$work/xnode" bench psi-ecdh --querier-file "$a" --responder-file "$b" --mode "$mode" \
        --suite "$suite" --no-floor --json)
      echo "xnode $xn" >&2
      python3 - "$n" "$mode" "$suite" "$pj" "$xn" <<'PY'
import json, sys
n, mode, suite, pj, xn = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4]), json.loads(sys.argv[5])
assert pj.get("truth_ok", True), "psi.js answer differs from the truth"
assert xn["correct"], "xnode answer differs from the truth"
p, x = pj["ms_total"], xn["seconds"] * 1000
print(f"{n:<8} {mode:<13} {suite:<20} {p:12.0f} {x:12.0f} {p / x:7.1f}x")
PY
    done
  done
done
