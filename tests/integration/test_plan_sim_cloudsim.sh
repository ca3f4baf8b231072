#!/bin/sh
# SPDX-License-Identifier: MIT
# tests/integration/test_plan_sim_cloudsim.sh PLAN_SIM - `plan-sim --model cloudsim` on a slice
# of the PlanetLab day (200 VMs, 200 hosts; a few seconds): the JSON keys the docs promise, the
# non-power-aware energy as the SPECpower tables give it, every migrating policy under Dvfs's
# energy, the metrics' products, rmig under CloudSim's rows on ESV and migrations; CloudSim's
# directory layout; the fallback to block dealing; bad options refused with exit 2 (rmig takes
# no parameter).
set -eu
plan_sim=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$plan_sim" --model cloudsim --vms 200 --hosts 200 \
	--policies npa,dvfs,thr-mmt:0.8,mad-mmt:2.5,lr-mmt:1.2,rmig --json >"$tmp/out.json"
python3 - "$tmp/out.json" <<'PY'
import json, sys
out = json.load(open(sys.argv[1]))
rows = {r["policy"]: r for r in out["policies"]}
for r in rows.values():
    for key in ("policy", "energy_kwh", "migrations", "slatah", "pdm", "slav", "esv"):
        assert key in r, (key, r)
    assert abs(r["slav"] - r["slatah"] * r["pdm"]) <= 1e-12, r
    assert abs(r["esv"] - r["energy_kwh"] * r["slav"]) <= 1e-9, r
# 100 G4 at 117 W and 100 G5 at 135 W from 0 to the last update at 86100.1 s
npa = 100 * (117 + 135) * 86100.1 / 3.6e6
assert abs(rows["npa"]["energy_kwh"] - npa) < 1e-6, rows["npa"]
assert rows["npa"]["migrations"] == 0 and rows["dvfs"]["migrations"] == 0
assert rows["dvfs"]["energy_kwh"] < npa
for name in ("thr-mmt:0.8", "mad-mmt:2.5", "lr-mmt:1.2"):
    r = rows[name]
    assert r["migrations"] > 0, r
    assert r["energy_kwh"] < rows["dvfs"]["energy_kwh"], (r, rows["dvfs"])
    assert 0 < r["slatah"] < 1 and 0 < r["pdm"] < 1, r
# the issue's target shape on the slice: rmig's ESV 30 % under the best CloudSim row's, with
# fewer migrations than any of them (the full day is docs/planner.md's, not pinned here)
cloudsim = [rows[n] for n in ("thr-mmt:0.8", "mad-mmt:2.5", "lr-mmt:1.2")]
assert 0 < rows["rmig"]["migrations"] < min(r["migrations"] for r in cloudsim), rows["rmig"]
assert rows["rmig"]["esv"] <= 0.7 * min(r["esv"] for r in cloudsim), rows["rmig"]
print(" ".join("%s %.2f kWh %d migrations ESV %.5f" % (n, r["energy_kwh"], r["migrations"], r["esv"])
               for n, r in rows.items()))
PY

# CloudSim's own layout, a directory of one file per VM, gives what the CSV of the same VMs
# gives; and a trace whose VMs, dealt in turn, do not all fit at the first placement (200 VMs on
# 110 hosts: the small ones take the G5 PEs the 2500-MIPS ones need; CloudSim's broker would
# exit) runs every policy with CloudSim's block dealing, says so, and matches --vm-types blocks.
# Asking for turn explicitly is refused with what to change.
python3 - "$tmp" "$(dirname "$0")/../../bench/data/planetlab-20110303.csv" <<'PY'
import os, sys
tmp = sys.argv[1]
lines = [l for l in open(sys.argv[2]) if not l.startswith("#")][:200]
os.mkdir(os.path.join(tmp, "day"))
with open(os.path.join(tmp, "slice.csv"), "w") as csv:
    for l in lines:
        name, *samples = l.strip().split(",")
        csv.write(l)
        with open(os.path.join(tmp, "day", name), "w") as f:
            f.write("\n".join(samples) + "\n")
PY
slice_policies=dvfs,thr-mmt:0.8,lr-mmt:1.2,rmig
"$plan_sim" --model cloudsim --trace "$tmp/slice.csv" --hosts 200 --policies $slice_policies \
	--json >"$tmp/csv.json"
"$plan_sim" --model cloudsim --trace "$tmp/day" --hosts 200 --policies $slice_policies \
	--json >"$tmp/dir.json"
"$plan_sim" --model cloudsim --trace "$tmp/slice.csv" --hosts 110 --policies $slice_policies \
	--json >"$tmp/fallback.json" 2>"$tmp/fallback.err"
"$plan_sim" --model cloudsim --trace "$tmp/slice.csv" --hosts 110 --policies $slice_policies \
	--vm-types blocks --json >"$tmp/blocks.json"
set +e
"$plan_sim" --model cloudsim --trace "$tmp/slice.csv" --hosts 110 --policies thr-mmt:0.8 \
	--vm-types turn >/dev/null 2>"$tmp/turn.err"
status=$?
set -e
[ "$status" -eq 1 ] || { echo "explicit --vm-types turn that cannot place: exit $status" >&2; exit 1; }
grep -q "fits on no host of 110" "$tmp/turn.err"
grep -q -- "--vm-types blocks" "$tmp/turn.err"
grep -q "every policy runs with the VM types in blocks" "$tmp/fallback.err"
python3 - "$tmp" <<'PY'
import json, os, sys
tmp = sys.argv[1]
load = lambda name: json.load(open(os.path.join(tmp, name)))
strip = lambda rows: [{k: v for k, v in r.items() if k != "plan_ms_mean"} for r in rows]
csv, directory = load("csv.json"), load("dir.json")
assert directory["vms"] == 200, directory
assert strip(csv["policies"]) == strip(directory["policies"]), (csv, directory)
assert csv["vm_types"] == "turn" and not csv["vm_types_fallback"], csv
fallback, blocks = load("fallback.json"), load("blocks.json")
assert fallback["vm_types"] == "blocks" and fallback["vm_types_fallback"], fallback
assert not blocks["vm_types_fallback"], blocks
assert strip(fallback["policies"]) == strip(blocks["policies"]), (fallback, blocks)
assert len(fallback["policies"]) == 4 and fallback["policies"][1]["migrations"] > 0
print("directory = csv on 200 VMs; turn on 110 hosts falls back to blocks:",
      " ".join("%s %.2f kWh" % (r["policy"], r["energy_kwh"]) for r in fallback["policies"]))
PY

for bad in "--model cloudsim --policies thr-xyz" "--model cloudsim --policies rmig:10" "--model cluster"; do
	set +e
	# shellcheck disable=SC2086
	"$plan_sim" $bad >/dev/null 2>&1
	status=$?
	set -e
	if [ "$status" -ne 2 ]; then
		echo "plan-sim $bad: exit $status, expected 2" >&2
		exit 1
	fi
done
