#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""engine-call-cycles - list call cycles among the library's engine files, from their object
files: file A calls file B when A's object leaves undefined a function B's object defines.
A reference to an ops table (data) is not a call. Objects outside engine/ are ignored.
Usage: engine-call-cycles.py [--allow A.c,B.c,...]... OBJECT...
--allow names a plug-in registry and its plug-ins (dirty.c and dirty_*.c call each other by
design); a cycle within one such set is reported but allowed. Exit 1 when another cycle exists."""

import os
import subprocess
import sys


def symbols(obj):
    out = subprocess.run(["nm", obj], capture_output=True, text=True, check=True).stdout
    defined, undefined = set(), set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] == "T":
            defined.add(parts[2])
        elif len(parts) == 2 and parts[0] == "U":
            undefined.add(parts[1])
    return defined, undefined


def name(obj):
    p = obj.replace(os.sep, "/")
    i = p.rfind("/engine/")
    return (p[i + 1:] if i >= 0 else os.path.basename(p)).removesuffix(".o")


def main():
    args, allowed, objs = sys.argv[1:], [], []
    while args:
        a = args.pop(0)
        if a == "--allow" and args:
            allowed.append({"engine/" + f.strip() for f in args.pop(0).split(",")})
        else:
            objs.append(a)
    objs = [o for o in objs if "/engine/" in o.replace(os.sep, "/")]
    if not objs:
        sys.exit(__doc__)
    table = {name(o): symbols(o) for o in objs}
    owner = {}
    for f, (defined, _) in table.items():
        for sym in defined:
            owner[sym] = f
    calls = {f: {} for f in table}
    for f, (_, undefined) in table.items():
        for sym in undefined:
            g = owner.get(sym)
            if g and g != f:
                calls[f].setdefault(g, []).append(sym)
    # Tarjan's strongly connected components.
    index, low, stack, on, sccs = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in calls[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            scc = []
            while True:
                w = stack.pop()
                on.discard(w)
                scc.append(w)
                if w == v:
                    break
            if len(scc) > 1:
                sccs.append(sorted(scc))

    sys.setrecursionlimit(10000)
    for v in sorted(calls):
        if v not in index:
            visit(v)
    bad = 0
    for scc in sccs:
        ok = any(set(scc) <= group for group in allowed)
        bad += not ok
        print(("allowed registry cycle among: " if ok else "cycle among: ") + ", ".join(scc))
        for a in scc:
            for b in scc:
                if b in calls[a]:
                    print(f"  {a} -> {b}: {', '.join(sorted(calls[a][b])[:6])}")
    print(f"engine-call-cycles: {len(table)} files, {bad} cycle(s) not allowed")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
