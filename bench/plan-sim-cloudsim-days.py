# SPDX-License-Identifier: MIT
"""bench/plan-sim-cloudsim-days.py PLAN_SIM DAY... - rmig's policy against CloudSim's rows on
whole PlanetLab days. A DAY is a trace plan-sim reads: a CSV like bench/data's, or CloudSim's own
directory of one file per VM (workload/planetlab/20110322 in github.com/Cloudslab/cloudsim).

For each day it runs CloudSim's rows (ThrMmt, IqrMmt, MadMmt, LrMmt, LrMc, LrRs) and rmig in
`plan-sim --model cloudsim`, and prints the best CloudSim ESV, LrMmt's migrations, the CloudSim
row with the least energy, and where rmig lands against the target of docs/planner.md (ESV at
least 30 % under the best CloudSim row, no more migrations than LrMmt). Days run two at a time
(-j); a line is printed as each finishes.

    python3 bench/plan-sim-cloudsim-days.py build/bench/plan-sim \\
        cloudsim/modules/cloudsim-examples/src/main/resources/workload/planetlab/2011* \\
        [--vm-types blocks] [--json FILE] [--png FILE]

Exit status 1 when the target is missed on any day."""
import argparse
import concurrent.futures
import json
import os
import subprocess
import sys

CLOUDSIM = ["thr-mmt:0.8", "iqr-mmt:1.5", "mad-mmt:2.5", "lr-mmt:1.2", "lr-mc:1.2", "lr-rs:1.2"]


def day_name(path):
    name = os.path.basename(os.path.normpath(path))
    return name[: -len(".csv")] if name.endswith(".csv") else name


def run_day(plan_sim, path, extra):
    result = subprocess.run(
        [plan_sim, "--model", "cloudsim", "--trace", path, "--policies",
         ",".join(CLOUDSIM + ["rmig"]), "--json"] + extra,
        capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError("%s: plan-sim exit %d: %s" % (path, result.returncode,
                                                         result.stderr.strip()))
    out = json.loads(result.stdout)
    rows = {p["policy"]: p for p in out["policies"]}
    best = min((rows[name] for name in CLOUDSIM), key=lambda r: r["esv"])
    frugal = min((rows[name] for name in CLOUDSIM), key=lambda r: r["energy_kwh"])
    lr, rmig = rows["lr-mmt:1.2"], rows["rmig"]
    return {
        "day": day_name(path),
        "vms": out["vms"],
        "vm_types": out["vm_types"],
        "best_cloudsim": best["policy"],
        "best_cloudsim_esv": best["esv"],
        "lr_mmt_migrations": lr["migrations"],
        "least_energy_cloudsim": frugal["policy"],
        "least_energy_cloudsim_kwh": frugal["energy_kwh"],
        "rmig": {k: rmig[k] for k in ("energy_kwh", "migrations", "slatah", "pdm", "esv")},
        "esv_vs_best": rmig["esv"] / best["esv"] - 1,
        "met": rmig["esv"] <= 0.7 * best["esv"] and rmig["migrations"] <= lr["migrations"],
        "policies": out["policies"],
    }


def line(r):
    return "%-9s %5d %-6s %-8s %.5f %7d %-7s %6.1f | %7.1f %6d %.5f %+5.0f %%  %s" % (
        r["day"], r["vms"], r["vm_types"], r["best_cloudsim"].split(":")[0],
        r["best_cloudsim_esv"], r["lr_mmt_migrations"],
        r["least_energy_cloudsim"].split(":")[0], r["least_energy_cloudsim_kwh"],
        r["rmig"]["energy_kwh"], r["rmig"]["migrations"], r["rmig"]["esv"],
        100 * r["esv_vs_best"], "met" if r["met"] else "MISSED")


def plot(results, png):
    data = png + ".dat"
    with open(data, "w") as out:
        for r in results:
            out.write("%s %g %g %g %g\n" % (r["day"], r["best_cloudsim_esv"], r["rmig"]["esv"],
                                            r["least_energy_cloudsim_kwh"],
                                            r["rmig"]["energy_kwh"]))
    script = """set terminal pngcairo size 1100,800 noenhanced
set output '%s'
set multiplot layout 2,1 title 'plan-sim --model cloudsim: CloudSim rows and rmig, one PlanetLab day each'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set grid ytics
set key tmargin center horizontal
set xtics rotate by -30
set yrange [0:*]
set ylabel 'ESV'
plot '%s' using 2:xtic(1) title 'best CloudSim row', '' using 3 title 'rmig'
set ylabel 'energy kWh'
plot '%s' using 4:xtic(1) title 'CloudSim row with the least energy', '' using 5 title 'rmig'
unset multiplot
""" % (png, data, data)
    try:
        subprocess.run(["gnuplot"], input=script, text=True, check=True)
    finally:
        os.unlink(data)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("plan_sim")
    parser.add_argument("days", nargs="+")
    parser.add_argument("--vm-types", choices=("turn", "blocks"))
    parser.add_argument("-j", "--jobs", type=int, default=2)
    parser.add_argument("--json", help="write every day's rows here")
    parser.add_argument("--png", help="plot ESV and energy per day (gnuplot)")
    args = parser.parse_args()
    extra = ["--vm-types", args.vm_types] if args.vm_types else []

    print("day         VMs types  best     its ESV LrMmt migr. least energy | rmig: kWh  migr."
          "     ESV  vs best  target", flush=True)
    results = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = {pool.submit(run_day, args.plan_sim, d, extra): d for d in args.days}
        for future in concurrent.futures.as_completed(futures):
            r = future.result()
            results[futures[future]] = r
            print(line(r), flush=True)
    ordered = [results[d] for d in args.days]
    met = sum(r["met"] for r in ordered)
    worst = max(ordered, key=lambda r: r["esv_vs_best"])
    print("target met on %d of %d days; rmig's ESV %.0f to %.0f %% under the best CloudSim row "
          "(closest: %s)" % (met, len(ordered), -100 * worst["esv_vs_best"],
                             -100 * min(r["esv_vs_best"] for r in ordered), worst["day"]))
    if args.json:
        with open(args.json, "w") as out:
            json.dump(ordered, out, indent=2)
    if args.png:
        plot(ordered, args.png)
    return 0 if met == len(ordered) else 1


if __name__ == "__main__":
    sys.exit(main())
