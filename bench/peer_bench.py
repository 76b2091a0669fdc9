#!/usr/bin/env python3
"""Prefill and decode of one model, side by side in one run: the native
llama.cpp against one or more cria binaries (a build from before a kernel
change and the current one, say), alternated round by round, medians with
the range.

    /usr/bin/python3 bench/peer_bench.py MODEL.cria MODEL.gguf [-p 512] [-n 16] [-t 2] [--rounds 5]
                                         [--cria build/bin/cria] [--cria /tmp/cria-old ...]

llama.cpp: `llama-bench -m GGUF -p P -n N -t T -r 1` from the native build
(bench/native_llamacpp.sh builds it on first use). cria: `cria bench -m
CRIA -p P -n N -t T -r 1` for each --cria binary (default: build/bin/cria).
-p 0 or -n 0 leaves that measurement out. Before every round and after the
last, `build/bin/membw --threads T` measures the read bandwidth; the decode
limit is the weight bytes one token reads (llama_bench.bytes_per_token)
over the largest of those probes, and each engine's decode is also given as
a share of it.
The .cria should be the GGUF imported by `cria convert`, so both engines
read the same weights. Rows go to stderr as JSON lines.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llama_bench  # noqa: E402  (native build, llama-bench's JSON, cria path)


def run_native(bindir, gguf, args):
    out = llama_bench.sh([os.path.join(bindir, "llama-bench"), "-m", gguf, "-p", str(args.p), "-n", str(args.n),
                          "-t", str(args.t), "-r", "1", "-o", "json"])
    return llama_bench.llama_bench_rates(json.loads(out))


def run_cria(binary, cria, args):
    j = json.loads(llama_bench.sh([binary, "bench", "-m", cria, "-p", str(args.p), "-n", str(args.n),
                                   "-t", str(args.t), "-r", "1", "--json"]))
    return j["prefill_tok_s"], j["decode_tok_s"]


def cell(xs):
    if not any(xs):
        return ""
    return f"{statistics.median(xs):.1f} ({min(xs):.1f}-{max(xs):.1f})"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cria_model")
    ap.add_argument("gguf")
    ap.add_argument("-p", type=int, default=512, help="prompt tokens (default 512)")
    ap.add_argument("-n", type=int, default=16, help="tokens decoded (default 16)")
    ap.add_argument("-t", type=int, default=2, help="threads (default 2)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--cria", action="append", help="a cria binary (repeatable; default build/bin/cria)")
    args = ap.parse_args()
    for f in (args.cria_model, args.gguf):
        if not os.path.isfile(f):
            sys.exit(f"peer_bench: {f}: no such file")
    binaries = args.cria or [llama_bench.CRIA]
    for b in binaries:
        if not os.access(b, os.X_OK):
            sys.exit(f"peer_bench: {b}: not an executable cria binary")
    bindir = llama_bench.native_bindir()
    engines = [("llama.cpp native", lambda: run_native(bindir, args.gguf, args))]
    engines += [(f"cria {b}", lambda b=b: run_cria(b, args.cria_model, args)) for b in binaries]
    results = {name: ([], []) for name, _ in engines}
    bws = []
    for r in range(args.rounds):
        bws.append(json.loads(llama_bench.sh([llama_bench.MEMBW, "--threads", str(args.t), "--json"]))["read_gb_s"])
        for name, fn in engines:
            pp, tg = fn()
            results[name][0].append(pp)
            results[name][1].append(tg)
            print(json.dumps({"round": r, "engine": name, "p": args.p, "threads": args.t, "prefill_tok_s": pp,
                              "decode_tok_s": tg}), file=sys.stderr, flush=True)
    bws.append(json.loads(llama_bench.sh([llama_bench.MEMBW, "--threads", str(args.t), "--json"]))["read_gb_s"])
    bpt = llama_bench.bytes_per_token(args.cria_model)
    limit = max(bws) * 1e9 / bpt
    native_pp, native_tg = (statistics.median(x) for x in results["llama.cpp native"])

    def ratio(xs, base):
        return f"{statistics.median(xs) / base:.2f}x" if base else ""

    print(f"\n{os.path.basename(args.cria_model)}: pp{args.p}, tg{args.n}, {args.t} threads, {args.rounds} alternated "
          "rounds, medians (min-max)")
    print(f"read bandwidth {min(bws):.1f}-{max(bws):.1f} GB/s over {len(bws)} probes; {bpt / 2**30:.2f} GiB read per "
          f"token; decode limit {limit:.2f} tok/s\n")
    print("| engine | prefill tok/s | vs native | decode tok/s | vs native | decode % of limit | decode spread |")
    print("|---|---|---|---|---|---|---|")
    for name, (pp, tg) in results.items():
        spread = f"{(max(tg) - min(tg)) / statistics.median(tg):.0%}" if any(tg) else ""
        share = f"{statistics.median(tg) / limit:.0%}" if any(tg) else ""
        print(f"| {name} | {cell(pp)} | {ratio(pp, native_pp)} | {cell(tg)} | {ratio(tg, native_tg)} | {share} | "
              f"{spread} |")


if __name__ == "__main__":
    main()
