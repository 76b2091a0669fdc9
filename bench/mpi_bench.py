#!/usr/bin/env python3
"""One model across MPI ranks on this machine: decode and prefill for one
process and for 2 ranks split by layers and by tensors, the ranks sharing
memory (one host) and on separate network stacks (network namespaces joined
by veth through a bridge, TCP only; optionally shaped to a link's bandwidth
with tc tbf), with the bytes that cross the bridge per decoded token.

    /usr/bin/python3 bench/mpi_bench.py MODEL.cria [-p 64] [-n 32] [--rounds 2] [--rates 1gbit,100mbit]

Configurations alternate within each round; medians (and the range) are
printed. Bytes per token come from the bridge's counters over two runs that
differ only in the tokens decoded (-n and 2n), so prefill and start-up cancel.
The network cases need root (ip netns, tc); without it they are left out.

The added latency of a real link is not measured here: this VM's kernel has
no netem qdisc (no CONFIG_NET_SCH_NETEM). docs/PERFORMANCE.md counts the
exchanges one decoded token waits for in each split, from which a link's
latency gives the time it adds, written as arithmetic.
"""
import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CRIA = os.path.join(ROOT, "build", "bin", "cria")
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from pylib import netns  # noqa: E402

ENV = {**os.environ, "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}


def cria_bench(model, p, n, threads, ranks=0, split=None, mpi_args=()):
    cmd = [CRIA, "bench", "-m", model, "-p", str(p), "-n", str(n), "-r", "1", "-t", str(threads), "--json"]
    if ranks:
        cmd = ["mpirun", "--oversubscribe", *mpi_args, "-np", str(ranks), *cmd, "--split", split]
    out = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=1800)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: exit {out.returncode}: {out.stderr[-1500:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def median(v):
    v = sorted(v)
    if not v:
        return float("nan")
    m = len(v) // 2
    return v[m] if len(v) % 2 else (v[m - 1] + v[m]) / 2


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("-p", type=int, default=64)
    ap.add_argument("-n", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--rates", default="1gbit", help="tbf rates for the network cases ('' for none)")
    ap.add_argument("--burst", default="4kb", help="tbf bucket size (default: a few frames)")
    ap.add_argument("--network-only", action="store_true", help="leave out the one-host rows")
    args = ap.parse_args()

    net_ok, why = netns.available()
    if not net_ok:
        print(f"network cases left out: {why}", file=sys.stderr)
    rates = [r for r in args.rates.split(",") if r]
    local = [("1 process", 1, 0, None, None), ("1 process", 2, 0, None, None),
             ("2 ranks, layers", 1, 2, "layers", None), ("2 ranks, tensors", 1, 2, "tensors", None)]
    network = []
    if net_ok:
        for rate in [None] + rates:
            for split in ("layers", "tensors"):
                network.append((f"2 ranks, {split}, netns" + (f" {rate}" if rate else ""), 1, 2, split, rate or "-"))
    configs = ([] if args.network_only else local) + network
    res = {i: {"decode": [], "prefill": [], "bytes_tok": []} for i in range(len(configs))}

    for rnd in range(args.rounds):
        for i, (name, t, ranks, split, rate) in enumerate(configs):
            if rate is None:
                r = cria_bench(args.model, args.p, args.n, t, ranks, split)
            else:
                with netns.Hosts(2, rate=None if rate == "-" else rate, burst=args.burst) as hosts:
                    b0 = hosts.sent_bytes()
                    r = cria_bench(args.model, args.p, args.n, t, ranks, split, hosts.mpirun_args())
                    b1 = hosts.sent_bytes()
                    cria_bench(args.model, args.p, 2 * args.n, t, ranks, split, hosts.mpirun_args())
                    b2 = hosts.sent_bytes()
                    res[i]["bytes_tok"].append(((b2 - b1) - (b1 - b0)) / args.n)
            res[i]["decode"].append(r["decode_tok_s"])
            res[i]["prefill"].append(r["prefill_tok_s"])
            print(json.dumps({"round": rnd, "config": name, "threads": t, **r}), file=sys.stderr, flush=True)

    print(f"model: {os.path.basename(args.model)}; pp{args.p}, tg{args.n}; medians of {args.rounds} rounds (range); "
          f"tbf burst {args.burst}")
    print("| configuration | threads/rank | decode tok/s | ms/token | prefill tok/s | bytes over the link / token |")
    print("|---|---|---|---|---|---|")
    for i, (name, t, ranks, split, rate) in enumerate(configs):
        d, p = res[i]["decode"], res[i]["prefill"]
        bt = res[i]["bytes_tok"]
        btxt = f"{median(bt) / 1024:.0f} KiB" if bt else "-"
        print(f"| {name} | {t} | {median(d):.2f} ({min(d):.2f}-{max(d):.2f}) | {1000 / median(d):.0f} | "
              f"{median(p):.1f} ({min(p):.1f}-{max(p):.1f}) | {btxt} |")


if __name__ == "__main__":
    main()
