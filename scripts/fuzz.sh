#!/usr/bin/env bash
# Runs xnode's fuzz targets (docs/RELIABILITY.md), JOBS at a time, each for
# FUZZTIME, and prints one line per target: executions and whether it found
# anything. A finding is kept by `go test` in the package's testdata/fuzz/
# (commit it with the fix and its regression test).
#
#   scripts/fuzz.sh                      # every target, 10 minutes each, 2 at a time
#   FUZZTIME=30s scripts/fuzz.sh         # a quick pass
#   scripts/fuzz.sh ./protocol/psi/ecdh:FuzzQuerierDeliver   # chosen targets
set -uo pipefail
cd "$(dirname "$0")/.."
FUZZTIME=${FUZZTIME:-10m}
JOBS=${JOBS:-2}
LOGDIR=${LOGDIR:-$(mktemp -d)}

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
	# package:target for every Fuzz function in the tree.
	while IFS= read -r line; do
		targets+=("$line")
	done < <(grep -rl --include='*_test.go' '^func Fuzz' . | sort | while read -r f; do
		for t in $(grep -o '^func Fuzz[A-Za-z0-9_]*' "$f" | cut -d' ' -f2); do
			echo "./$(dirname "${f#./}"):$t"
		done
	done)
fi

echo "fuzzing ${#targets[@]} targets for $FUZZTIME each, $JOBS at a time; logs in $LOGDIR"
run() {
	local pkg=${1%%:*} target=${1##*:}
	local log="$LOGDIR/$(echo "$pkg" | tr '/.' '__')_$target.log"
	go test -run '^$' -fuzz "^$target\$" -fuzztime "$FUZZTIME" -parallel 1 "$pkg" >"$log" 2>&1
	local rc=$?
	local execs
	execs=$(grep -o 'execs: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
	if [ $rc -eq 0 ]; then
		printf '%-28s %-26s %12s execs  nothing found\n' "$pkg" "$target" "${execs:-?}"
	else
		printf '%-28s %-26s %12s execs  FAILED (see %s)\n' "$pkg" "$target" "${execs:-?}" "$log"
	fi
	return $rc
}
export -f run
export FUZZTIME LOGDIR
printf '%s\n' "${targets[@]}" | xargs -P "$JOBS" -I{} bash -c 'run "$@"' _ {}
