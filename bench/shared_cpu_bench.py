#!/usr/bin/env python3
"""Decode when the machine is shared: cria and the native llama.cpp, each at
1 and 2 threads, on an idle machine and with a busy process pinned to the
last core (what a board running something else beside the model sees).
The figure of merit is loaded 2-thread decode over idle 1-thread decode: a
pool that waits for a preempted thread falls below 1; one that spins
politely and lets the free core take the work stays near it.

    /usr/bin/python3 bench/shared_cpu_bench.py MODEL.cria MODEL.gguf [-n 32] [--rounds 3]

Engines and conditions alternate within each round; medians are printed.
The native llama.cpp comes from bench/native_llamacpp.sh (built on demand).
"cria fixed" is the same build with CRIA_ADAPTIVE_THREADS=0: every run
spread over all threads, as before the pool learned to go solo when a
thread is held up.
"""
import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llama_bench  # noqa: E402  (the native llama.cpp build)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CRIA = os.path.join(ROOT, "build", "bin", "cria")


def cria_decode(model, n, t, adaptive=True):
    env = dict(os.environ, CRIA_ADAPTIVE_THREADS="1" if adaptive else "0")
    out = subprocess.run([CRIA, "bench", "-m", model, "-p", "16", "-n", str(n), "-r", "1", "-t", str(t), "--json"],
                         check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out)["decode_tok_s"]


def llama_decode(bindir, gguf, n, t):
    out = subprocess.run([os.path.join(bindir, "llama-bench"), "-m", gguf, "-p", "0", "-n", str(n), "-r", "1", "-t",
                          str(t), "-o", "json"], check=True, capture_output=True, text=True).stdout
    return json.loads(out)[0]["avg_ts"]


def median(v):
    v = sorted(v)
    return v[len(v) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cria_model")
    ap.add_argument("gguf")
    ap.add_argument("-n", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    bindir = llama_bench.native_bindir()
    last = os.cpu_count() - 1
    engines = {"cria": lambda t: cria_decode(args.cria_model, args.n, t),
               "cria fixed": lambda t: cria_decode(args.cria_model, args.n, t, adaptive=False),
               "llama.cpp native": lambda t: llama_decode(bindir, args.gguf, args.n, t)}
    res = {(e, c, t): [] for e in engines for c in ("idle", "loaded") for t in (1, 2)}
    for _ in range(args.rounds):
        for cond in ("idle", "loaded"):
            busy = None
            if cond == "loaded":  # one core kept busy by another process
                busy = subprocess.Popen(["taskset", "-c", str(last), "/usr/bin/python3", "-c", "while True: pass"])
            try:
                for e, fn in engines.items():
                    for t in (1, 2):
                        if e == "cria fixed" and t == 1:
                            continue  # one thread never spreads: the same run as cria's
                        res[(e, cond, t)].append(fn(t))
            finally:
                if busy:
                    busy.kill()
                    busy.wait()
            print(json.dumps({f"{k[0]}/{k[1]}/t{k[2]}": v for k, v in res.items() if v}), file=sys.stderr, flush=True)
    print(f"\nmodel: {os.path.basename(args.cria_model)}; decode tok/s, median of {args.rounds} alternated rounds, "
          f"-n {args.n}; loaded = a busy process pinned to core {last}\n")
    print("| engine | idle 1 thread | idle 2 threads | loaded 1 thread | loaded 2 threads | loaded 2 / idle 1 |")
    print("|---|---|---|---|---|---|")
    for e in engines:
        src = {1: "cria" if e == "cria fixed" else e, 2: e}
        m = {(c, t): median(res[(src[t], c, t)]) for c in ("idle", "loaded") for t in (1, 2)}
        print(f"| {e} | {m[('idle', 1)]:.2f} | {m[('idle', 2)]:.2f} | {m[('loaded', 1)]:.2f} | {m[('loaded', 2)]:.2f} | "
              f"{m[('loaded', 2)] / m[('idle', 1)]:.2f}x |")


if __name__ == "__main__":
    main()
