#!/usr/bin/env python3
"""One model across MPI ranks on this machine: decode and prefill for one
process and for 2 ranks split by layers and by tensors, the ranks sharing
memory (one host) and on separate network stacks (network namespaces joined
by veth through a bridge, TCP only; optionally shaped to a link's bandwidth
with tc tbf), with the bytes that cross the bridge per decoded token.

    /usr/bin/python3 bench/mpi_bench.py MODEL.cria [-p 64] [-n 32] [--rounds 2] [--rates 1gbit,100mbit]
                                        [--gguf MODEL.gguf] [--network-only]

With --gguf (the same weights as a GGUF; cria's file imported from it), the
anchor runs beside cria: llama.cpp's RPC backend, built natively by
bench/native_llamacpp.sh, the way llama.cpp spreads one model over machines:
`ggml-rpc-server` holds the last half of the layers (`llama-bench --rpc HOST:PORT
-ngl L/2`), the first process the rest, one thread each (a layer split like
cria's `--split layers`); on one host over loopback and, as root, across two
namespaces like cria's network rows.

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
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CRIA = os.path.join(ROOT, "build", "bin", "cria")
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from pylib import gguf_io, netns  # noqa: E402

import llama_bench  # noqa: E402  (the native llama.cpp build, llama-bench's output)

ENV = {**os.environ, "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}


def cria_bench(model, p, n, threads, ranks=0, split=None, mpi_args=()):
    cmd = [CRIA, "bench", "-m", model, "-p", str(p), "-n", str(n), "-r", "1", "-t", str(threads), "--json"]
    if ranks:
        cmd = ["mpirun", "--oversubscribe", *mpi_args, "-np", str(ranks), *cmd, "--split", split]
    out = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=1800)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: exit {out.returncode}: {out.stderr[-1500:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def llamacpp_bench(bindir, gguf, p, n, threads, rpc=None, ngl=0, netns_exec=()):
    """llama-bench of the native build (pp p, tg n, one repetition), with the
    last `ngl` layers on the rpc-server at `rpc` when given."""
    cmd = [*netns_exec, os.path.join(bindir, "llama-bench"), "-m", gguf, "-p", str(p), "-n", str(n),
           "-t", str(threads), "-r", "1", "-o", "json"]
    if rpc:
        cmd += ["--rpc", rpc, "-ngl", str(ngl)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: exit {out.returncode}: {out.stderr[-1500:]}")
    pp, tg = llama_bench.llama_bench_rates(json.loads(out.stdout))
    return {"prefill_tok_s": pp, "decode_tok_s": tg}


class RpcServer:
    """llama.cpp's rpc-server on host:port with one thread (in a namespace
    when netns_exec is given), for the length of a with block."""

    def __init__(self, bindir, host, port, threads=1, netns_exec=()):
        self.cmd = [*netns_exec, os.path.join(bindir, "ggml-rpc-server"), "-H", host, "-p", str(port),
                    "-t", str(threads)]
        self.addr = f"{host}:{port}"

    def __enter__(self):
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        host, port = self.addr.rsplit(":", 1)
        deadline = time.time() + 20
        while time.time() < deadline:  # listening yet? (a namespace's address is reached over the bridge)
            if self.proc.poll() is not None:
                raise RuntimeError(f"rpc-server exited: {self.proc.stderr.read()[-800:]}")
            try:
                socket.create_connection((host, int(port)), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.2)
        self.__exit__()
        raise RuntimeError(f"rpc-server did not listen on {self.addr} within 20 s")

    def __exit__(self, *exc):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def gguf_layers(gguf):
    """The model's block count, from the GGUF's metadata."""
    r = gguf_io.Reader(gguf)
    arch = r.kv["general.architecture"]
    return int(r.kv[f"{arch}.block_count"])


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
    ap.add_argument("--gguf", help="the same weights as a GGUF: adds llama.cpp's RPC backend as the anchor")
    args = ap.parse_args()

    net_ok, why = netns.available()
    if not net_ok:
        print(f"network cases left out: {why}", file=sys.stderr)
    rates = [r for r in args.rates.split(",") if r]
    native = ngl = None
    if args.gguf:
        native = llama_bench.native_bindir()
        ngl = gguf_layers(args.gguf) // 2

    # A configuration: (name, threads per process, run(hosts) -> result, network rate or None for one host).
    def cria_run(t, ranks=0, split=None):
        return lambda hosts, n: cria_bench(args.model, args.p, n, t, ranks, split, hosts.mpirun_args() if hosts else ())

    def rpc_run(hosts, n):
        if not hosts:
            with RpcServer(native, "127.0.0.1", 50152) as srv:
                return llamacpp_bench(native, args.gguf, args.p, n, 1, srv.addr, ngl)
        ns = [["ip", "netns", "exec", x] for x in hosts.ns]
        with RpcServer(native, hosts.addrs[1], 50152, netns_exec=ns[1]) as srv:
            return llamacpp_bench(native, args.gguf, args.p, n, 1, srv.addr, ngl, netns_exec=ns[0])

    local = [("cria, 1 process", 1, cria_run(1), None), ("cria, 1 process", 2, cria_run(2), None),
             ("cria, 2 ranks, layers", 1, cria_run(1, 2, "layers"), None),
             ("cria, 2 ranks, tensors", 1, cria_run(1, 2, "tensors"), None)]
    if native:
        local += [("llama.cpp, 1 process", 1, lambda hosts, n: llamacpp_bench(native, args.gguf, args.p, n, 1), None),
                  ("llama.cpp, 2 processes, RPC layers", 1, rpc_run, None)]
    network = []
    if net_ok:
        for rate in [None] + rates:
            for split in ("layers", "tensors"):
                network.append((f"cria, 2 ranks, {split}, netns" + (f" {rate}" if rate else ""), 1,
                                cria_run(1, 2, split), rate or "-"))
        if native:  # unshaped only: the rpc-server receives its layers' weights over the link at load
            network.append(("llama.cpp, 2 processes, RPC layers, netns", 1, rpc_run, "-"))
    configs = ([] if args.network_only else local) + network
    res = {i: {"decode": [], "prefill": [], "bytes_tok": []} for i in range(len(configs))}

    for rnd in range(args.rounds):
        for i, (name, t, run, rate) in enumerate(configs):
            if rate is None:
                r = run(None, args.n)
            else:
                with netns.Hosts(2, rate=None if rate == "-" else rate, burst=args.burst) as hosts:
                    b0 = hosts.sent_bytes()
                    r = run(hosts, args.n)
                    b1 = hosts.sent_bytes()
                    run(hosts, 2 * args.n)
                    b2 = hosts.sent_bytes()
                    res[i]["bytes_tok"].append(((b2 - b1) - (b1 - b0)) / args.n)
            res[i]["decode"].append(r["decode_tok_s"])
            res[i]["prefill"].append(r["prefill_tok_s"])
            print(json.dumps({"round": rnd, "config": name, "threads": t, **r}), file=sys.stderr, flush=True)

    print(f"model: {os.path.basename(args.model)}; pp{args.p}, tg{args.n}; medians of {args.rounds} rounds (range); "
          f"tbf burst {args.burst}" + (f"; llama.cpp RPC: last {ngl} layers on the rpc-server" if ngl else ""))
    print("| configuration | threads/process | decode tok/s | ms/token | prefill tok/s | bytes over the link / token |")
    print("|---|---|---|---|---|---|")
    for i, (name, t, _, rate) in enumerate(configs):
        d, p = res[i]["decode"], res[i]["prefill"]
        bt = res[i]["bytes_tok"]
        btxt = f"{median(bt) / 1024:.0f} KiB" if bt else "-"
        print(f"| {name} | {t} | {median(d):.2f} ({min(d):.2f}-{max(d):.2f}) | {1000 / median(d):.0f} | "
              f"{median(p):.1f} ({min(p):.1f}-{max(p):.1f}) | {btxt} |")


if __name__ == "__main__":
    main()
