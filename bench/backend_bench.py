#!/usr/bin/env python3
"""Backends side by side on the same files in one run: `cria bench` of each
file under each backend, the backends alternated within every round so a
noisy moment hits them alike; medians over the rounds. This is the
measurement `auto` placement follows (runtime/model/placement.cc,
auto_linear_backend; docs/PERFORMANCE.md, "Backends").

    /usr/bin/python3 bench/backend_bench.py FILE.cria... [--backends cpu,xnnpack] [--threads 1,2]
                                            [-p 128] [-n 32] [--rounds 3]

Prints a Markdown table: prefill and decode tokens/s, the decode speed
relative to the first backend, and the peak RSS (a backend that copies the
weights releases the mapped pages it copied, so RSS shows whether memory
doubled).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CRIA = os.path.join(ROOT, "build", "bin", "cria")


def bench(path, backend, threads, p, n):
    out = subprocess.run([CRIA, "bench", "-m", path, "--backend", backend, "-t", str(threads), "-p", str(p), "-n",
                          str(n), "-r", "1", "--json"], check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="+")
    ap.add_argument("--backends", default="cpu,xnnpack")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("-p", type=int, default=128, help="prompt tokens (prefill)")
    ap.add_argument("-n", type=int, default=32, help="tokens decoded")
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    backends = a.backends.split(",")
    rows = []
    for path in a.files:
        info = json.loads(subprocess.run([CRIA, "inspect", path, "--json"], check=True, capture_output=True,
                                         text=True).stdout)
        types = sorted({t["dtype"] for t in info["tensors"] if len(t["shape"]) == 2})
        for th in (int(t) for t in a.threads.split(",")):
            runs = {b: [] for b in backends}
            for r in range(a.rounds):
                order = backends if r % 2 == 0 else backends[::-1]
                for b in order:
                    runs[b].append(bench(path, b, th, a.p, a.n))
                    print(json.dumps(runs[b][-1]), file=sys.stderr)
            base = statistics.median(x["decode_tok_s"] for x in runs[backends[0]])
            for b in backends:
                pp = statistics.median(x["prefill_tok_s"] for x in runs[b])
                tg = statistics.median(x["decode_tok_s"] for x in runs[b])
                rss = max(x["peak_rss_bytes"] for x in runs[b])
                rows.append((os.path.basename(path), "/".join(types), th, b, pp, tg, tg / base, rss))
    print(f"| file | matrices | threads | backend | prefill tok/s (pp{a.p}) | decode tok/s (tg{a.n}) "
          f"| decode vs {backends[0]} | peak RSS |")
    print("|---|---|---|---|---|---|---|---|")
    for f, ty, th, b, pp, tg, rel, rss in rows:
        print(f"| {f} | {ty} | {th} | {b} | {pp:.1f} | {tg:.2f} | {rel:.2f}x | {rss / 2**20:.0f} MiB |")


if __name__ == "__main__":
    main()
