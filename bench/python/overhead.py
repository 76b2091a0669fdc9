#!/usr/bin/env python3
"""Per-token cost of the Python binding: the same greedy decode through
`cria run` and through a Python `for piece in model.stream(...)` loop, runs
interleaved, medians reported.

    /usr/bin/python3 bench/python/overhead.py -m MODEL.cria [-n 64] [-t 2] [-r 5]

Columns: decode ms/token as the C engine times it (its decode loop, which
includes the Python callback) and as the Python reader sees it (first piece
to last piece, so the queue hand-off and the reader's own loop count too).
Overhead = Python reader ms/token over `cria run`'s, minus one.
"""
import argparse
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "python"))
import cria  # noqa: E402

PROMPT = "The history of the printing press begins"


def cli_run(cli, model, n, threads, eos):
    p = subprocess.run([cli, "run", "-m", model, "-p", PROMPT, "--greedy", "-n", str(n), "-t", str(threads),
                        "--eos-id", str(eos)], capture_output=True, text=True, check=True)
    m = re.search(r"generated (\d+) tokens in ([\d.]+) s", p.stderr)
    tokens, secs = int(m.group(1)), float(m.group(2))
    return p.stdout[:-1], tokens, secs


def py_run(model, n, eos):
    s = model.stream(PROMPT, do_sample=False, max_new_tokens=n, eos_token_id=[eos])
    pieces, stamps = [], []
    for piece in s:
        stamps.append(time.perf_counter())
        pieces.append(piece)
    r = s.result
    # Reader-side: the first piece arrives after prefill + one token.
    reader = (stamps[-1] - stamps[0]) / (r.generated_tokens - 1)
    return "".join(pieces), r.generated_tokens, r.decode_seconds, reader


def bare_run(model, n, eos):
    """The same decode through the C API with no callback: the engine alone."""
    import ctypes
    from cria import _lib
    req = model.request(PROMPT, do_sample=False, max_new_tokens=n, eos_token_id=[eos])
    session = model._acquire_session(1)
    try:
        res = _lib.GenerateResultStruct()
        _lib.check(_lib.lib().cria_generate(session, ctypes.byref(req.params), _lib.TOKEN_CALLBACK(), None,
                                            ctypes.byref(res)))
    finally:
        model._release_session(session, 1)
    return res.generated_tokens, res.decode_seconds


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-m", "--model", required=True)
    ap.add_argument("-n", type=int, default=64)
    ap.add_argument("-t", "--threads", type=int, default=2)
    ap.add_argument("-r", "--repeats", type=int, default=5)
    ap.add_argument("--cli", default=str(ROOT / "build" / "bin" / "cria"))
    a = ap.parse_args()
    model = cria.Model(a.model, threads=a.threads)
    eos = model.info.bos_id if model.info.bos_id >= 0 else model.info.vocab_size - 1  # never generated: fixed length
    py_run(model, 8, eos)  # warm the page cache and the session
    cli_ms, bare_ms, py_engine_ms, py_reader_ms = [], [], [], []
    for _ in range(a.repeats):
        text_c, tok_c, secs_c = cli_run(a.cli, a.model, a.n, a.threads, eos)
        tok_b, secs_b = bare_run(model, a.n, eos)
        text_p, tok_p, secs_p, reader = py_run(model, a.n, eos)
        if text_c != text_p or not tok_c == tok_p == tok_b:
            sys.exit("bench: cria run and the Python loop produced different text")
        # Decode time spans the tokens after the first (prefill makes the first).
        cli_ms.append(1000 * secs_c / (tok_c - 1))
        bare_ms.append(1000 * secs_b / (tok_b - 1))
        py_engine_ms.append(1000 * secs_p / (tok_p - 1))
        py_reader_ms.append(1000 * reader)
    name = Path(a.model).name
    print(f"{name}: {tok_c} tokens, {a.threads} threads, {a.repeats} interleaved runs each")
    print("| statistic | `cria run` | C API, no callback | Python loop (engine time) | Python loop (reader time) | "
          "Python reader vs `cria run` | vs no callback |")
    print("|---|---|---|---|---|---|---|")
    for label, f in (("min", min), ("median", statistics.median)):
        c, b, e, r = (f(x) for x in (cli_ms, bare_ms, py_engine_ms, py_reader_ms))
        print(f"| {label} ms/token | {c:.3f} | {b:.3f} | {e:.3f} | {r:.3f} | {100 * (r / c - 1):+.2f}% | "
              f"{100 * (r / b - 1):+.2f}% ({1000 * (r - b):+.1f} µs) |")


if __name__ == "__main__":
    main()
