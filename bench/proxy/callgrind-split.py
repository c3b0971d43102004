#!/usr/bin/env python3
"""Exclusive instructions per request of a callgrind profile, split by where they run.

Usage: callgrind-split.py <callgrind.out> <requests> <exe name>

Shared objects (libssl.so.3, libcrypto.so.3, libc.so.6, ...) are one part each; inside the
executable called <exe name> the parts are the Rust crates (first path segment of the demangled
function name; ring's assembly, named ring_core_*, counts as ring). Exclusive cost = the cost lines
of a function's own code, without the inclusive cost lines that follow each `calls=` line.
"""
import re
import sys


def main():
    path, requests, exe = sys.argv[1], max(1, int(sys.argv[2])), sys.argv[3]
    objects, functions, cost = {}, {}, {}
    obj, fun, skip = "?", "?", False

    def named(table, line, key):
        # "key=(id) name" defines a compressed name, "key=(id)" refers to it, "key=name" is plain.
        m = re.match(key + r"=(\(\d+\))?\s*(.*)", line.rstrip("\n"))
        if m.group(1) and m.group(2):
            table[m.group(1)] = m.group(2)
        return table.get(m.group(1), m.group(2)) if m.group(1) else m.group(2)

    def part(o, f):
        base = o.rsplit("/", 1)[-1]
        if base != exe:
            return base
        if f.startswith("ring_core"):
            return exe + ": ring"
        m = re.search(r"[A-Za-z_][A-Za-z0-9_]*(?=::)", f)
        crate = m.group(0) if m else "?"
        return exe + ": " + ("std/core/alloc" if crate in ("std", "core", "alloc") else crate)

    with open(path, errors="replace") as lines:
        for line in lines:
            if skip:
                skip = False
                continue
            if line.startswith("ob="):
                obj = named(objects, line, "ob")
            elif line.startswith("cob="):
                named(objects, line, "cob")
            elif line.startswith("fn="):
                fun = named(functions, line, "fn")
            elif line.startswith("cfn="):
                named(functions, line, "cfn")
            elif line.startswith("calls="):
                skip = True
            elif line[:1].isdigit() or line[:1] in "+-*":
                p = line.split()
                if len(p) >= 2:
                    k = part(obj, fun)
                    cost[k] = cost.get(k, 0) + int(p[1])
    total = sum(cost.values())
    for k, c in sorted(cost.items(), key=lambda x: -x[1])[:16]:
        print("%12.0f  %5.1f%%  %s" % (c / requests, 100.0 * c / max(1, total), k))
    print("%12.0f  100.0%%  total per request" % (total / requests))


if __name__ == "__main__":
    main()
