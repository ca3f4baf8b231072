#!/bin/sh
# SPDX-License-Identifier: MIT
# tests/integration/test_rmig_bench.sh RMIG_BENCH - rmig-bench runs every method on two small
# workloads in one run, prints the table with ratios against precopy-xen, writes valid JSON and
# succeeds (every migration ended with identical RAM). Timing is not asserted.
set -eu
bench=$1
out=$(mktemp)
json=$(mktemp)
trap 'rm -f "$out" "$json"' EXIT
"$bench" --ram 16M --repeat 1 --workloads idle,zipf-kv --transport tcp --json "$json" >"$out"
cat "$out"
for line in '^idle  *precopy-xen .* ref  *ref  *ref$' '^zipf-kv  *predict ' '^zipf-kv  *tsmc ' \
	'^zipf-kv  *postcopy ' '^zipf-kv  *hybrid ' '^zipf-kv  *auto>' 'predict vs precopy-xen' \
	'auto (chose [a-z-]* x[0-9][^)]*) vs best' '^model vs measured' \
	'^zipf-kv  *inputs: [0-9]* pages/s' '^  *postcopy  *[0-9.]*  *[0-9.]*  *[-+][0-9]*%'; do
	if ! grep -q "$line" "$out"; then
		echo "rmig-bench output lacks: $line" >&2
		exit 1
	fi
done
python3 - "$json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
res = d["results"]
assert len(res) == 14 and all(r["ok"] for r in res), res
for w in ("idle", "zipf-kv"):
    row = {r["method"]: r for r in res if r["workload"] == w}
    probe = row["auto"]["probe"]
    assert probe["bandwidth"] > 0 and 0 <= probe["zero_fraction"] <= 1, probe
    assert "model_total_ms" not in row["auto"]
    for m, r in row.items():
        if m != "auto":
            assert r["model_total_ms"] > 0 and r["model_bytes"] > 0, (w, m, r)
    # post-copy moves every non-zero page once, plus the device state (160 KiB)
    want = d["ram_bytes"] * (1 - probe["zero_fraction"]) + 160 * 1024
    got = row["postcopy"]["model_bytes"]
    assert abs(got - want) <= 0.01 * want, (w, got, want)
    # and its total time is those bytes over the bandwidth the probe measured
    assert abs(row["postcopy"]["model_total_ms"] / 1000 - got / probe["bandwidth"]) < 0.01, row["postcopy"]
EOF
if "$bench" --methods x --workloads nonsense 2>/dev/null; then
	echo "rmig-bench accepted an unknown workload" >&2
	exit 1
fi
