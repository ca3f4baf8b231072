#!/bin/sh
# SPDX-License-Identifier: MIT
# tests/integration/test_cli_plan.sh RMIG SOURCE_DIR - `rmig plan` as a user runs it: the example
# cluster's overloaded host gets a move whose destination stays under its limit; a broken
# snapshot fails with the field's path; bad options exit 2.
set -eu
rmig=$1
src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$rmig" plan --snapshot "$src/bench/data/example-cluster.json" --json >"$tmp/plan.json"
python3 - "$tmp/plan.json" <<'PY'
import json, sys
plan = json.load(open(sys.argv[1]))
assert plan["moves"], "the example cluster has an overloaded host: expected a move"
hosts = {h["id"]: h for h in plan["hosts"]}
for m in plan["moves"]:
    assert m["source"] != m["destination"], m
    assert m["method"], m
    assert m["total_time_s"] > 0 and m["bytes"] > 0, m
for d in {m["destination"] for m in plan["moves"]}:
    assert hosts[d]["utilisation_after"] <= hosts[d]["limit"] + 1e-9, hosts[d]
for s in {m["source"] for m in plan["moves"]}:
    assert hosts[s]["utilisation_after"] < hosts[s]["utilisation"], hosts[s]
print("rmig plan: %d moves" % len(plan["moves"]))
PY

echo '{"bandwidth": 1e9, "hosts": [{"id": "h1", "cpu_capacity": -4, "memory_bytes": 1}], "vms": []}' \
	>"$tmp/bad.json"
if "$rmig" plan --snapshot "$tmp/bad.json" 2>"$tmp/err"; then
	echo "rmig plan accepted a negative capacity" >&2
	exit 1
fi
grep -q 'hosts\[0\].cpu_capacity' "$tmp/err" || {
	echo "the error does not name the field:" >&2
	cat "$tmp/err" >&2
	exit 1
}
set +e
"$rmig" plan --no-such-option >/dev/null 2>&1
rc=$?
set -e
[ "$rc" = 2 ] || {
	echo "bad option: exit $rc, expected 2" >&2
	exit 1
}
echo "rmig plan: errors and options checked"
