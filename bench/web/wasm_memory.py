#!/usr/bin/env python3
"""The memory a WebAssembly module can have: reads the memory it imports or
defines (the binary's import and memory sections) and prints whether it is
64-bit (Memory64), shared, and its maximum size. A page cannot grow a
module's memory past that maximum, whatever the address width.

    /usr/bin/python3 bench/web/wasm_memory.py bench/node_modules/wllama3/esm/wasm/wllama.wasm
"""
import sys


def leb(d, p):
    """An unsigned LEB128 at d[p]: (value, next position)."""
    v = shift = 0
    while True:
        b = d[p]
        p += 1
        v |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return v, p


def limits(d, p):
    """A memory type's limits at d[p]: (flags, min pages, max pages or None, next position)."""
    flags = d[p]
    mn, p = leb(d, p + 1)
    mx = None
    if flags & 1:
        mx, p = leb(d, p)
    return flags, mn, mx, p


def skip_name(d, p):
    n, p = leb(d, p)
    return p + n


def memories(d):
    if d[:4] != b"\0asm":
        raise ValueError("not a WebAssembly binary")
    p, out = 8, []
    while p < len(d):
        sid = d[p]
        size, p = leb(d, p + 1)
        end = p + size
        if sid == 2:  # imports: module, name, kind, description
            n, q = leb(d, p)
            for _ in range(n):
                q = skip_name(d, skip_name(d, q))
                kind = d[q]
                q += 1
                if kind == 0:  # function: type index
                    _, q = leb(d, q)
                elif kind == 1:  # table: reference type, limits
                    _, _, _, q = limits(d, q + 1)
                elif kind == 2:
                    flags, mn, mx, q = limits(d, q)
                    out.append(("imported", flags, mn, mx))
                elif kind == 3:  # global: value type, mutability
                    q += 2
                else:
                    raise ValueError(f"unknown import kind {kind}")
        elif sid == 5:
            n, q = leb(d, p)
            for _ in range(n):
                flags, mn, mx, q = limits(d, q)
                out.append(("defined", flags, mn, mx))
        p = end
    return out


def main():
    for path in sys.argv[1:]:
        with open(path, "rb") as f:
            for how, flags, mn, mx in memories(f.read()):
                width = "64-bit (Memory64)" if flags & 4 else "32-bit"
                top = f"{mx} pages = {mx * 65536 / 2**30:.2f} GiB" if mx is not None else "none declared"
                print(f"{path}: {how} memory, {width}{', shared' if flags & 2 else ''}, "
                      f"initial {mn * 65536 / 2**20:.0f} MiB, maximum {top}")


if __name__ == "__main__":
    main()
