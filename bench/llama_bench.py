#!/usr/bin/env python3
"""Llama 3 speed, side by side in one run: cria vs llama.cpp on the same
weights (GGUF Q4_0 / Q8_0, imported into .cria bit for bit), and decode vs
the memory-bandwidth limit (bytes of weights read per token / read
bandwidth measured by bench/membw in the same run).

    /usr/bin/python3 bench/llama_bench.py [--shapes 1b,8b] [--quants q4_0,q8_0] [--threads 1,2]
                                          [--work /work/ckpt] [-p 512] [-n 128] [-r 3]
    /usr/bin/python3 bench/llama_bench.py --table-from rows.jsonl   # the table of saved rows

Checkpoints (random weights at the real shapes, by scripts/gen_checkpoint.py
--full) and their GGUF / .cria conversions are made once in --work (outside
the repository). llama.cpp comes from npm node-llama-cpp (scripts/setup
--bench); nothing is downloaded. Run it on an idle machine: the table is
only as good as the quietest run.
"""
import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CRIA = os.path.join(ROOT, "build", "bin", "cria")
MEMBW = os.path.join(ROOT, "build", "bin", "membw")
SHAPES = {"1b": "llama3.2-1b", "8b": "llama3-8b", "falcon-7b": "falcon-7b", "falcon2-11b": "falcon2-11b"}


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw).stdout


def ensure(work, shape, quant):
    hf = os.path.join(work, SHAPES[shape])
    if not os.path.exists(os.path.join(hf, "config.json")):
        print(f"generating {hf} (full size, random weights) ...", file=sys.stderr)
        subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "scripts", "gen_checkpoint.py"), "--preset", SHAPES[shape],
                        "--full", "--out", hf], check=True)
    gguf = os.path.join(work, f"{SHAPES[shape]}-{quant}.gguf")
    if not os.path.exists(gguf):
        print(f"converting to {gguf} ...", file=sys.stderr)
        subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "scripts", "hf_to_gguf.py"), hf, "--out", gguf,
                        "--type", quant], check=True)
    cria = os.path.join(work, f"{SHAPES[shape]}-{quant}.cria")
    if not os.path.exists(cria) or os.path.getmtime(cria) < os.path.getmtime(CRIA):
        subprocess.run([CRIA, "convert", gguf, "-o", cria, "--quant", "keep"], check=True, stderr=subprocess.DEVNULL)
    return gguf, cria


def bytes_per_token(cria):
    """Weights read to decode one token: every tensor, except that the token
    embedding contributes one row (unless it is also the output head)."""
    j = json.loads(sh([CRIA, "inspect", cria, "--json"]))
    total = sum(t["size"] for t in j["tensors"])
    if not j["config"]["tie_word_embeddings"]:
        emb = next(t for t in j["tensors"] if t["name"] == "tok_embd.weight")
        total -= emb["size"] - emb["size"] // emb["shape"][0]
    return total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", default="1b,8b")
    ap.add_argument("--quants", default="q4_0,q8_0")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--work", default="/work/ckpt")
    ap.add_argument("-p", type=int, default=512)
    ap.add_argument("-n", type=int, default=128)
    ap.add_argument("-r", type=int, default=3)
    ap.add_argument("--no-llamacpp", action="store_true")
    ap.add_argument("--table-from", metavar="JSONL",
                    help="print the table from rows an earlier run wrote to stderr (joins runs)")
    args = ap.parse_args()
    if args.table_from:
        with open(args.table_from) as f:
            print_table([json.loads(line) for line in f if line.startswith("{")])
        return
    os.makedirs(args.work, exist_ok=True)
    load = os.getloadavg()[0]
    if load > 0.5:
        print(f"warning: load average {load:.2f}: another process is using the CPU; numbers will be low",
              file=sys.stderr)
    rows = []
    for shape in args.shapes.split(","):
        for quant in args.quants.split(","):
            gguf, cria = ensure(args.work, shape, quant)
            bpt = bytes_per_token(cria)
            for t in [int(x) for x in args.threads.split(",")]:
                # This machine's bandwidth drifts within minutes: probe before
                # and after the engines and take the larger (the limit).
                bw = json.loads(sh([MEMBW, "--threads", str(t), "--json"]))["read_gb_s"]
                c = json.loads(sh([CRIA, "bench", "-m", cria, "-p", str(args.p), "-n", str(args.n), "-t", str(t),
                                   "-r", str(args.r), "--json"]))
                l = None
                if not args.no_llamacpp:
                    l = json.loads(sh(["node", os.path.join(ROOT, "bench", "llamacpp_bench.mjs"), gguf, str(args.p),
                                       str(args.n), str(t), str(args.r)], cwd=os.path.join(ROOT, "bench")))
                bw = max(bw, json.loads(sh([MEMBW, "--threads", str(t), "--json"]))["read_gb_s"])
                limit = bw * 1e9 / bpt
                row = {"shape": shape, "quant": quant, "threads": t, "bandwidth_gb_s": bw, "limit_tok_s": limit,
                       "cria": c, "llama.cpp": l}
                rows.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
    print(f"\nmachine: {os.cpu_count()} cores; load average at start {load:.2f}; "
          f"{time.strftime('%Y-%m-%d %H:%M')}; -p {args.p} -n {args.n} -r {args.r}\n")
    print_table(rows)


def print_table(rows):
    print("| shape | weights | threads | read GB/s | decode limit tok/s | cria decode | llama.cpp decode | cria/llama.cpp | "
          "cria % of limit | cria prefill | llama.cpp prefill | cria/llama.cpp | cria TTFT s | cria load s | cria RSS GiB | llama.cpp RSS GiB |")
    print("|" + "---|" * 16)
    for r in rows:
        c, l, limit = r["cria"], r["llama.cpp"], r["limit_tok_s"]
        bpt = r["bandwidth_gb_s"] * 1e9 / limit
        ld = l["decode_tok_s"] if l else float("nan")
        lp = l["prefill_tok_s"] if l else float("nan")
        print(f"| {r['shape']} | {r['quant']} ({bpt / 2**30:.2f} GiB read/token) | {r['threads']} | {r['bandwidth_gb_s']:.1f} | "
              f"{limit:.2f} | {c['decode_tok_s']:.2f} | {ld:.2f} | {c['decode_tok_s'] / ld:.2f}x | "
              f"{100 * c['decode_tok_s'] / limit:.0f}% | {c['prefill_tok_s']:.1f} | {lp:.1f} | {c['prefill_tok_s'] / lp:.2f}x | "
              f"{c['ttft_s']:.2f} | {c['load_s']:.2f} | {c['peak_rss_bytes'] / 2**30:.2f} | "
              f"{(l['peak_rss_bytes'] / 2**30) if l else float('nan'):.2f} |")

if __name__ == "__main__":
    main()
