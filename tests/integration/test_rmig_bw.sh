#!/bin/sh
# SPDX-License-Identifier: MIT
# tests/integration/test_rmig_bw.sh RMIG_BW URI - rmig-bw end to end on one transport: the
# server checks every landed byte against the client's pattern (--check), the client checks
# that the server saw every batch, and the JSON report carries one positive result per size.
set -eu
bw=$1
uri=$2
out=$("$bw" --uri "$uri" --size 4K,64K --iters 40 --batch 16 --lat-iters 20 --region 16M \
	--check --json)
echo "$out"
echo "$out" | python3 -c '
import json, sys
r = json.load(sys.stdin)["results"]
assert [x["size"] for x in r] == [4096, 65536], r
for x in r:
    assert x["batches"] == 40 and x["runs"] == 640, x
    assert x["bytes"] == 640 * x["size"], x
    assert x["gbps"] > 0 and x["errors"] == 0, x
    assert 0 < x["lat_p50_us"] <= x["lat_p99_us"] <= x["lat_p999_us"], x
print("rmig-bw over", sys.argv[1], "checked")
' "$uri"
