#!/usr/bin/env python3
"""Llama 3 speed, side by side in one run: cria vs llama.cpp on the same
weights (GGUF Q4_0 / Q8_0, imported into .cria bit for bit), and decode vs
the memory-bandwidth limit (bytes of weights read per token / read
bandwidth measured by bench/membw in the same run).

    /usr/bin/python3 bench/llama_bench.py [--shapes 1b,8b] [--quants q4_0,q8_0] [--threads 1,2]
                                          [--work /work/ckpt] [-p 512] [-n 128] [-r 3] [--rounds 5]
                                          [--weights copy,map] [--peers native,prebuilt]
    /usr/bin/python3 bench/llama_bench.py --table-from rows.jsonl   # the table of saved rows

Checkpoints (random weights at the real shapes, by scripts/gen_checkpoint.py
--full) and their GGUF / .cria conversions are made once in --work (outside
the repository). llama.cpp comes from npm node-llama-cpp (scripts/setup
--bench): its prebuilt binaries, and a native build of the source it ships
(bench/native_llamacpp.sh, -DGGML_NATIVE=ON, built on first use); nothing
is downloaded. Engines run alternately, --rounds times, so the spread says
how steady each is. Run it on an idle machine: the table is
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
SHAPES = {"1b": "llama3.2-1b", "8b": "llama3-8b", "3.1-8b": "llama3.1-8b", "falcon-7b": "falcon-7b", "falcon2-11b": "falcon2-11b"}


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw).stdout


def native_bindir():
    """The native llama.cpp's bin directory (bench/native_llamacpp.sh builds it on first use;
    its progress and errors go straight to stderr)."""
    proc = subprocess.run([os.path.join(ROOT, "bench", "native_llamacpp.sh")], stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        sys.exit(f"{os.path.basename(sys.argv[0])}: the native llama.cpp build failed (bench/native_llamacpp.sh)")
    return proc.stdout.strip().splitlines()[-1]


def llama_bench_rates(rows):
    """(prefill, decode) tok/s from llama-bench's `-o json` rows; 0.0 for a test it did not run."""
    pp = next((r["avg_ts"] for r in rows if r["n_prompt"] > 0 and r["n_gen"] == 0), 0.0)
    tg = next((r["avg_ts"] for r in rows if r["n_gen"] > 0 and r["n_prompt"] == 0), 0.0)
    return pp, tg


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


def run_cria(cria, args, t, weights):
    return json.loads(sh([CRIA, "bench", "-m", cria, "-p", str(args.p), "-n", str(args.n), "-t", str(t),
                          "-r", str(args.r), "--json", "--weights", weights]))


def run_prebuilt(gguf, args, t):
    return json.loads(sh(["node", os.path.join(ROOT, "bench", "llamacpp_bench.mjs"), gguf, str(args.p), str(args.n),
                          str(t), str(args.r)], cwd=os.path.join(ROOT, "bench")))


def run_native(bindir, gguf, args, t):
    """llama-bench of the native build: pp P and tg N, R repetitions (its own
    averages), flash attention off like the others; peak RSS from wait4."""
    cmd = [os.path.join(bindir, "llama-bench"), "-m", gguf, "-p", str(args.p), "-n", str(args.n), "-t", str(t),
           "-r", str(args.r), "-o", "json"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    out = p.stdout.read()
    _, status, usage = os.wait4(p.pid, 0)
    if status != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({status})")
    res = json.loads(out)
    pp, tg = llama_bench_rates(res)
    return {"prefill_tok_s": pp, "decode_tok_s": tg, "peak_rss_bytes": usage.ru_maxrss * 1024,
            "build": f"{res[0].get('build_commit', '?')} ({res[0].get('build_number', '?')})"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", default="1b,8b")
    ap.add_argument("--quants", default="q4_0,q8_0")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--work", default="/work/ckpt")
    ap.add_argument("-p", type=int, default=512)
    ap.add_argument("-n", type=int, default=128)
    ap.add_argument("-r", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=1,
                    help="alternated runs of every engine (the spread across them is reported)")
    ap.add_argument("--weights", default="copy,map", help="cria --weights choices to run (each its own row)")
    ap.add_argument("--peers", default="native,prebuilt",
                    help="llama.cpp builds: native (bench/native_llamacpp.sh, -DGGML_NATIVE=ON), prebuilt (node-llama-cpp)")
    ap.add_argument("--table-from", metavar="JSONL",
                    help="print the table from rows an earlier run wrote to stderr (joins runs)")
    args = ap.parse_args()
    if args.table_from:
        with open(args.table_from) as f:
            print_table([json.loads(line) for line in f if line.startswith("{")])
        return
    os.makedirs(args.work, exist_ok=True)
    peers = [x for x in args.peers.split(",") if x]
    native = None
    if "native" in peers:
        native = native_bindir()
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
                engines = [(f"cria --weights {w}", lambda w=w: run_cria(cria, args, t, w)) for w in args.weights.split(",")]
                if native:
                    engines.append(("llama.cpp native", lambda: run_native(native, gguf, args, t)))
                if "prebuilt" in peers:
                    engines.append(("llama.cpp prebuilt (node-llama-cpp)", lambda: run_prebuilt(gguf, args, t)))
                # This machine's bandwidth drifts within minutes: probe around
                # every round and take the largest (the limit).
                bws, runs = [], {name: [] for name, _ in engines}
                for _ in range(args.rounds):
                    bws.append(json.loads(sh([MEMBW, "--threads", str(t), "--json"]))["read_gb_s"])
                    for name, fn in engines:
                        runs[name].append(fn())
                bws.append(json.loads(sh([MEMBW, "--threads", str(t), "--json"]))["read_gb_s"])
                bw = max(bws)
                row = {"shape": shape, "quant": quant, "threads": t, "bandwidth_gb_s": bw, "limit_tok_s": bw * 1e9 / bpt,
                       "bytes_per_token": bpt, "runs": runs}
                rows.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
    print(f"\nmachine: {os.cpu_count()} cores; load average at start {load:.2f}; "
          f"{time.strftime('%Y-%m-%d %H:%M')}; -p {args.p} -n {args.n} -r {args.r}, {args.rounds} alternated rounds\n")
    print_table(rows)


def median(v):
    v = sorted(v)
    return v[len(v) // 2] if len(v) % 2 else (v[len(v) // 2 - 1] + v[len(v) // 2]) / 2


def print_table(rows):
    print("| shape | weights | threads | read GB/s | decode limit tok/s | engine | decode tok/s (median, min-max) | "
          "spread | % of limit | vs native llama.cpp | prefill tok/s | vs native llama.cpp | peak RSS GiB |")
    print("|" + "---|" * 13)
    for r in rows:
        limit = r["limit_tok_s"]
        runs = r["runs"]
        nat = runs.get("llama.cpp native")
        nd = median([x["decode_tok_s"] for x in nat]) if nat else float("nan")
        npf = median([x["prefill_tok_s"] for x in nat]) if nat else float("nan")
        for name, rs in runs.items():
            d = [x["decode_tok_s"] for x in rs]
            pf = [x["prefill_tok_s"] for x in rs]
            md = median(d)
            print(f"| {r['shape']} | {r['quant']} ({r['bytes_per_token'] / 2**30:.2f} GiB read/token) | {r['threads']} | "
                  f"{r['bandwidth_gb_s']:.1f} | {limit:.2f} | {name} | {md:.2f} ({min(d):.2f}-{max(d):.2f}) | "
                  f"{100 * (max(d) - min(d)) / md:.0f}% | {100 * md / limit:.0f}% | {md / nd:.2f}x | {median(pf):.1f} | "
                  f"{median(pf) / npf:.2f}x | {max(x['peak_rss_bytes'] for x in rs) / 2**30:.2f} |")


if __name__ == "__main__":
    main()
