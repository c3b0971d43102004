#!/usr/bin/env python3
"""Where a meshid proxy's CPU goes: a profile split by shared object and, inside meshid, by crate.

Usage: profile-split.py callgrind <callgrind.out> <requests> <exe name>
           exclusive instructions per request (cost lines of a function's own code, without the
           inclusive cost line that follows each `calls=` line)
       perf report --no-children --sort dso,symbol --stdio -g none | profile-split.py perf <exe name>
           share of the samples

Shared objects (libssl.so.3, libcrypto.so.3, libc.so.6, the kernel, ...) are one part each; inside
the executable <exe name> the parts are the Rust crates (first path segment of the demangled
function name; ring's assembly, named ring_core_*, counts as ring).
"""
import re
import sys


def part(exe, obj, fun):
    base = obj.rsplit("/", 1)[-1]
    if base != exe:
        return base
    if fun.startswith("ring_core"):
        return exe + ": ring"
    m = re.search(r"[A-Za-z_][A-Za-z0-9_]*(?=::)", fun)
    crate = m.group(0) if m else "?"
    return exe + ": " + ("std/core/alloc" if crate in ("std", "core", "alloc") else crate)


def callgrind(path, exe):
    objects, functions, cost = {}, {}, {}
    obj, fun, skip = "?", "?", False

    def named(table, line, key):
        # "key=(id) name" defines a compressed name, "key=(id)" refers to it, "key=name" is plain.
        m = re.match(key + r"=(\(\d+\))?\s*(.*)", line.rstrip("\n"))
        if m.group(1) and m.group(2):
            table[m.group(1)] = m.group(2)
        return table.get(m.group(1), m.group(2)) if m.group(1) else m.group(2)

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
                    k = part(exe, obj, fun)
                    cost[k] = cost.get(k, 0) + int(p[1])
    return cost


def perf(exe):
    cost = {}
    for line in sys.stdin:
        m = re.match(r"\s*([0-9.]+)%\s+(\S+)\s+\[[.k]\]\s+(.*)", line)
        if m:
            k = part(exe, m.group(2), m.group(3).strip())
            cost[k] = cost.get(k, 0.0) + float(m.group(1))
    return cost


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "callgrind":
        per, cost = max(1, int(sys.argv[3])), callgrind(sys.argv[2], sys.argv[4])
    elif len(sys.argv) == 3 and sys.argv[1] == "perf":
        per, cost = 1, perf(sys.argv[2])
    else:
        sys.exit(__doc__)
    total = sum(cost.values())
    for k, c in sorted(cost.items(), key=lambda x: -x[1])[:16]:
        print("%12.0f  %5.1f%%  %s" % (c / per, 100.0 * c / max(1, total), k))
    print("%12.0f  100.0%%  total%s" % (total / per, " per request" if sys.argv[1] == "callgrind" else ""))


if __name__ == "__main__":
    main()
