#!/usr/bin/env python3
"""Long context, side by side in one run: decode and a 512-token prefill
after D tokens already sit in the KV cache, for each cache type, cria
against the native llama.cpp (flash attention on, the same cache type),
plus the prefill of one long prompt; peak RSS of every run.

    /usr/bin/python3 bench/long_ctx_bench.py [--shapes 1b|8b|3.1-8b] [--quant q4_0] [--depths 512,4096,16384,32768]
                                             [--kv f16,q8] [-t 2] [-p 512] [-n 32] [--long-prompt 16384]
                                             [--work /work/ckpt]
    /usr/bin/python3 bench/long_ctx_bench.py --table-from rows.jsonl   # the table of saved rows
    /usr/bin/python3 bench/long_ctx_bench.py --peer-from rows.jsonl ...  # cria only, llama.cpp's saved rows

-p 0 measures decode only: llama-bench then fills each context once rather
than once for each of its two tests. The Llama 3 8B ("8b") has 8192
positions; past them use "3.1-8b".

--peer-from takes llama.cpp's numbers from an earlier run's rows (same
shape, quant, threads, cache type, depth and lengths) instead of running it
again: for a cria change measured on the same machine, where llama.cpp's
rows (the q8 ones take half an hour at 16K) cannot have moved. Such rows
carry "peer_from" and the table marks their llama.cpp cells with *.

cria: `cria bench -d D -p P -n N --kv KV` (the context is prefilled, then
the measured prompt continues it, reusing exactly those cache rows).
llama.cpp: its `llama-bench -d D -p P -n N -fa 1 -ctk KV -ctv KV` (pp P @ dD
and tg N @ dD), built from node-llama-cpp's bundled source with
-DGGML_NATIVE=ON by bench/native_llamacpp.sh. Both read the same GGUF
bytes (cria imports them bit for bit). Checkpoints are those of
bench/llama_bench.py (made once in --work). Rows go to stderr as JSON lines
as they finish; the table is printed at the end.
"""
import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llama_bench  # noqa: E402  (checkpoints, native build, cria path)

LLAMA_KV = {"f16": "f16", "q8": "q8_0", "q4": "q4_0"}


def run_cria(cria, depth, args, kv, p, n):
    # cria bench always measures a prompt; with -p 0 (decode only) it is one
    # token, and its rate is not reported.
    cmd = [llama_bench.CRIA, "bench", "-m", cria, "-d", str(depth), "-p", str(max(p, 1)), "-n", str(n), "-r", "1",
           "-t", str(args.t), "--kv", kv, "--json"]
    j = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    return {"prefill_tok_s": j["prefill_tok_s"] if p else 0.0, "decode_tok_s": j["decode_tok_s"],
            "peak_rss_bytes": j["peak_rss_bytes"]}


def run_native(bindir, gguf, depth, args, kv, p, n):
    cmd = [os.path.join(bindir, "llama-bench"), "-m", gguf, "-d", str(depth), "-p", str(p), "-n", str(n), "-r", "1",
           "-t", str(args.t), "-fa", "1", "-ctk", LLAMA_KV[kv], "-ctv", LLAMA_KV[kv], "-o", "json"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out = proc.stdout.read()
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({status}): {err[-800:]}")
    pp, tg = llama_bench.llama_bench_rates(json.loads(out))
    return {"prefill_tok_s": pp, "decode_tok_s": tg, "peak_rss_bytes": usage.ru_maxrss * 1024}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", default="1b")
    ap.add_argument("--quant", default="q4_0")
    ap.add_argument("--depths", default="512,4096,16384,32768")
    ap.add_argument("--kv", default="f16,q8")
    ap.add_argument("-t", type=int, default=2)
    ap.add_argument("-p", type=int, default=512, help="tokens of the prefill measured at each depth (0: decode only, "
                    "so that llama-bench fills the context once, not twice)")
    ap.add_argument("-n", type=int, default=32)
    ap.add_argument("--long-prompt", type=int, default=16384, help="tokens of the one-prompt prefill row (0: none)")
    ap.add_argument("--work", default="/work/ckpt")
    ap.add_argument("--table-from", metavar="JSONL")
    ap.add_argument("--peer-from", metavar="JSONL", help="llama.cpp's rows from an earlier run, not rerun")
    args = ap.parse_args()
    if args.table_from:
        with open(args.table_from) as f:
            print_table([json.loads(line) for line in f if line.startswith("{")])
        return
    for kv in args.kv.split(","):
        if kv not in LLAMA_KV:
            sys.exit(f"long_ctx_bench: --kv {kv}: not one of {', '.join(LLAMA_KV)}")
    saved = {}
    if args.peer_from:
        with open(args.peer_from) as f:
            for line in f:
                if line.startswith("{"):
                    r = json.loads(line)
                    saved[peer_key(r)] = r["llama.cpp"]
        native = None
    else:
        native = llama_bench.native_bindir()
    load = os.getloadavg()[0]
    if load > 0.5:
        print(f"warning: load average {load:.2f}: another process is using the CPU; numbers will be low",
              file=sys.stderr)
    rows = []
    started = time.strftime("%Y-%m-%d %H:%M")
    for shape in args.shapes.split(","):
        gguf, cria = llama_bench.ensure(args.work, shape, args.quant)
        cases = [(d, args.p, args.n) for d in map(int, args.depths.split(","))]
        if args.long_prompt:
            cases.append((0, args.long_prompt, 1))
        for depth, p, n in cases:
            for kv in args.kv.split(","):
                t0 = time.time()
                row = {"shape": shape, "quant": args.quant, "threads": args.t, "kv": kv, "depth": depth, "p": p, "n": n}
                if native is None and peer_key(row) not in saved:
                    sys.exit(f"long_ctx_bench: {args.peer_from}: no llama.cpp row for {shape} {args.quant} {kv} "
                             f"depth {depth} p {p} n {n} at {args.t} threads")
                row["cria"] = run_cria(cria, depth, args, kv, p, n)
                if native is None:
                    row["llama.cpp"] = saved[peer_key(row)]
                    row["peer_from"] = args.peer_from
                else:
                    row["llama.cpp"] = run_native(native, gguf, depth, args, kv, p, n)
                row["seconds"] = round(time.time() - t0, 1)
                rows.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
    print(f"\nmachine: {os.cpu_count()} cores; load average at start {load:.2f}; {started}; "
          f"{args.t} threads, one run of each engine per row\n")
    print_table(rows)
    if native is None:
        print(f"\n* llama.cpp's row from {args.peer_from}, not rerun")


def peer_key(r):
    return (r["shape"], r["quant"], r["threads"], r["kv"], r["depth"], r["p"], r["n"])


def print_table(rows):
    print("| shape | KV cache | context | cria decode tok/s | llama.cpp decode tok/s | cria/llama.cpp | "
          "cria prefill tok/s | llama.cpp prefill tok/s | cria/llama.cpp | cria peak RSS GiB | llama.cpp peak RSS GiB |")
    print("|" + "---|" * 11)
    for r in rows:
        c, l = r["cria"], r["llama.cpp"]
        mark = "*" if r.get("peer_from") else ""
        decode = r["n"] > 1
        cells = [f"{r['shape']} {r['quant']}", r["kv"],
                 (f"pp{r['p']} @ d{r['depth']}" if r["p"] else f"tg{r['n']} @ d{r['depth']}") if decode else f"one {r['p']}-token prompt",
                 f"{c['decode_tok_s']:.2f}" if decode else "", f"{l['decode_tok_s']:.2f}{mark}" if decode else "",
                 f"{c['decode_tok_s'] / l['decode_tok_s']:.2f}x" if decode else "",
                 *([f"{c['prefill_tok_s']:.1f}", f"{l['prefill_tok_s']:.1f}{mark}",
                    f"{c['prefill_tok_s'] / l['prefill_tok_s']:.2f}x"] if r["p"] else ["", "", ""]),
                 f"{c['peak_rss_bytes'] / 2**30:.2f}", f"{l['peak_rss_bytes'] / 2**30:.2f}{mark}"]
        print("| " + " | ".join(cells) + " |")

if __name__ == "__main__":
    main()
