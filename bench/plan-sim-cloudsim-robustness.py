# SPDX-License-Identifier: MIT
"""bench/plan-sim-cloudsim-robustness.py PLAN_SIM TRACE [WORKDIR] - rmig's policy against
CloudSim's MMT rows beyond the one PlanetLab day shipped: three random halves of the VMs (on
400 hosts), the day started 6, 12 and 18 h later (wrapping), the day run backwards, and three
random dealings of the VM types (CloudSim's blocks over shuffled rows). Prints, per variant, the
best CloudSim ESV, LrMmt's migrations and where rmig lands (docs/planner.md). Minutes of CPU."""
import json
import os
import random
import subprocess
import sys
import tempfile

POLICIES = "thr-mmt:0.8,iqr-mmt:1.5,mad-mmt:2.5,lr-mmt:1.2,rmig"


def variants(rows):
    for seed in (1, 2, 3):
        shuffled = rows[:]
        random.Random(seed).shuffle(shuffled)
        yield "half%d" % seed, sorted(shuffled[: len(rows) // 2]), ["--hosts", "400"]
    for hours in (6, 12, 18):
        k = hours * 12
        yield "shift%dh" % hours, [[r[0]] + r[1 + k :] + r[1 : 1 + k] for r in rows], []
    yield "reversed", [[r[0]] + r[1:][::-1] for r in rows], []
    for seed in (1, 2, 3):
        shuffled = rows[:]
        random.Random(100 + seed).shuffle(shuffled)
        yield "types%d" % seed, shuffled, ["--vm-types", "blocks"]


def main():
    plan_sim, trace = sys.argv[1], sys.argv[2]
    workdir = sys.argv[3] if len(sys.argv) > 3 else tempfile.mkdtemp()
    lines = open(trace).read().splitlines()
    head = [l for l in lines if l.startswith("#")][:1]
    rows = [l.split(",") for l in lines if l and not l.startswith("#")]
    print("variant    best CloudSim ESV   LrMmt migrations | rmig kWh  migrations   ESV   vs best  target")
    for name, variant, options in variants(rows):
        path = os.path.join(workdir, name + ".csv")
        with open(path, "w") as out:
            out.write("\n".join(head + [",".join(r) for r in variant]) + "\n")
        result = subprocess.run([plan_sim, "--model", "cloudsim", "--trace", path, "--policies",
                                 POLICIES, "--json"] + options, check=True,
                                capture_output=True, text=True)
        by_name = {p["policy"].split(":")[0]: p for p in json.loads(result.stdout)["policies"]}
        best = min((by_name[k] for k in ("thr-mmt", "iqr-mmt", "mad-mmt", "lr-mmt")),
                   key=lambda r: r["esv"])
        lr, rmig = by_name["lr-mmt"], by_name["rmig"]
        met = rmig["esv"] <= 0.7 * best["esv"] and rmig["migrations"] <= lr["migrations"]
        print("%-10s %-8s %.5f %17d | %8.1f %11d %.5f %+6.0f %%  %s" % (
            name, best["policy"].split(":")[0], best["esv"], lr["migrations"],
            rmig["energy_kwh"], rmig["migrations"], rmig["esv"],
            (rmig["esv"] / best["esv"] - 1) * 100, "met" if met else "MISSED"))


if __name__ == "__main__":
    main()
