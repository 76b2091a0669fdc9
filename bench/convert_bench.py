#!/usr/bin/env python3
"""Conversion speed and memory: `cria convert` of a full-size bf16
checkpoint to q4, next to the time it takes merely to read the input files.

    /usr/bin/python3 bench/convert_bench.py [--preset llama3-8b] [--work /work/ckpt] [--quant q4] [--threads 2]

The checkpoint (random weights, real shape) is generated once in --work by
scripts/gen_checkpoint.py --full. Both timings run with the same page-cache
state: the read pass goes first, so if the files fit in RAM both see a warm
cache (the table says which).
"""
import argparse
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CRIA = os.path.join(ROOT, "build", "bin", "cria")


def read_all(files):
    t = time.time()
    n = 0
    for f in files:
        with open(f, "rb", buffering=0) as fh:
            while True:
                b = fh.read(64 << 20)
                if not b:
                    break
                n += len(b)
    return time.time() - t, n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="llama3-8b")
    ap.add_argument("--work", default="/work/ckpt")
    ap.add_argument("--quant", default="q4")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--extra", nargs="*", default=[])
    args = ap.parse_args()
    hf = os.path.join(args.work, args.preset)
    if not os.path.exists(os.path.join(hf, "config.json")):
        subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "scripts", "gen_checkpoint.py"), "--preset", args.preset,
                        "--full", "--out", hf], check=True)
    files = [os.path.join(hf, f) for f in sorted(os.listdir(hf)) if f.endswith(".safetensors")]
    read_s, nbytes = read_all(files)
    out = os.path.join(args.work, f"{args.preset}-{args.quant}-convert-bench.cria")
    t = time.time()
    p = subprocess.run(["/usr/bin/time", "-f", "%M", CRIA, "convert", hf, "-o", out, "--quant", args.quant,
                        "--threads", str(args.threads)] + args.extra, capture_output=True, text=True)
    wall = time.time() - t
    if p.returncode != 0:
        sys.exit(p.stderr)
    rss_kib = int(p.stderr.strip().splitlines()[-1])
    size = os.path.getsize(out)
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    cache = "warm (the input fits in RAM)" if nbytes < mem * 0.6 else "cold-ish (input larger than 60% of RAM)"
    print(f"| input | read time | convert wall | ratio | peak RSS | output | threads | page cache |")
    print(f"|---|---|---|---|---|---|---|---|")
    print(f"| {args.preset} bf16, {nbytes / 2**30:.1f} GiB | {read_s:.1f} s ({nbytes / read_s / 1e9:.2f} GB/s) | "
          f"{wall:.1f} s | {wall / read_s:.2f}x | {rss_kib / 2**20:.2f} GiB | {args.quant}, {size / 2**30:.2f} GiB | "
          f"{args.threads} | {cache} |")
    os.remove(out)


if __name__ == "__main__":
    main()
