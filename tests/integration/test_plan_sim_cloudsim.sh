#!/bin/sh
# SPDX-License-Identifier: MIT
# tests/integration/test_plan_sim_cloudsim.sh PLAN_SIM - `plan-sim --model cloudsim` on a slice
# of the PlanetLab day (200 VMs, 200 hosts; a few seconds): the JSON keys the docs promise, the
# non-power-aware energy as the SPECpower tables give it, every migrating policy under Dvfs's
# energy, the metrics' products, rmig under CloudSim's rows on ESV and migrations, and bad
# options refused with exit 2 (rmig takes no parameter).
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
