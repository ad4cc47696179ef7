#!/bin/sh
# 2PC against Paxos Commit under the `2pc` swarm's faults one kind at a time: for each
# kind of the swarm's generator, a scenario file that is the built-in swarm with only
# that kind on, compared with `dsim compare` on the same seeds (the same fault schedule
# for both). Usage: bench/txn-fault-kinds/run.sh [SEEDS] (default 100), from the
# repository's root, after `cargo build --release`.
set -eu
seeds=${1:-100}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
dsim=./target/release/dsim
for kind in crash:coordinator crash partition pause drop duplicate delay; do
    file=$(echo "$kind" | tr ':' '-')
    for protocol in 2pc paxos-commit; do
        $dsim show "$protocol" > "$dir/base.json"
        python3 -c "
import json, sys
d = json.load(sys.stdin)
d['name'] = '$protocol-$file'
d['nemesis']['generator']['kinds'] = {'$kind': 1.0}
d['nemesis']['generator']['swarm'] = False
json.dump(d, sys.stdout, indent=1)" < "$dir/base.json" > "$dir/$protocol-$file.json"
    done
    echo "== $kind"
    $dsim compare "$dir/2pc-$file.json" "$dir/paxos-commit-$file.json" --seeds "$seeds" |
        grep -E "schedule|blocked_ms_p99|in_doubt_ms_p99"
done
