#!/bin/sh
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
	'auto (chose [a-z-]* x[0-9][^)]*) vs best'; do
	if ! grep -q "$line" "$out"; then
		echo "rmig-bench output lacks: $line" >&2
		exit 1
	fi
done
python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); assert len(d["results"]) == 14 and all(r["ok"] for r in d["results"])' "$json"
if "$bench" --methods x --workloads nonsense 2>/dev/null; then
	echo "rmig-bench accepted an unknown workload" >&2
	exit 1
fi
