#!/usr/bin/env bash
# Porcupine and dsim side by side on Porcupine's own test data, each timed by its own
# code on this machine (check time only: Porcupine's parse and dsim's parse_s excluded).
# Usage: bench/porcupine/run.sh PORCUPINE_CHECKOUT [DSIM_BINARY]
# Needs Go (`apt-get install golang-go`). Porcupine has no dependencies.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
porcupine="$(cd "$1" && pwd)"
dsim="${2:-$here/../../target/release/dsim}"
data="$here/../../checker/tests/data/porcupine"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp -r "$porcupine"/. "$work"
cp "$here/dsim_bench_test.go" "$work/"
(cd "$work" && go test -v -run TestDsimSideBySide -count=1 .) | grep '^RESULT' > "$work/porcupine.txt"
printf '%-22s %12s %12s %8s\n' history porcupine_s dsim_s ratio
while read -r _ name porcupine_s _; do
    if [ "$name" = "jepsen/etcd-all" ]; then
        dsim_s=0
        for f in "$data"/jepsen/etcd_*.log; do
            [ -s "$f" ] || continue
            s=$("$dsim" check "$f" --model cas-register --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["check_s"])' || true)
            dsim_s=$(python3 -c "print($dsim_s + ${s:-0})")
        done
    else
        dsim_s=$("$dsim" check "$data/$name" --model kv --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["check_s"])' || true)
    fi
    ratio=$(python3 -c "print(f'{$porcupine_s / max($dsim_s, 1e-9):.1f}x')")
    printf '%-22s %12.4f %12.4f %8s\n' "$name" "$porcupine_s" "$dsim_s" "$ratio"
done < "$work/porcupine.txt"
