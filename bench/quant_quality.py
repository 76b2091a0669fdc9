#!/usr/bin/env python3
"""Quantization quality: held-out perplexity of each miniature at f32, f16,
q8, q4 g32 and q4 g128, computed by `cria perplexity` (default protocol,
--ctx 256), next to the f32 figure of the PyTorch reference
(tests/reference/fixtures/mini-*.json, gen_mini_fixtures.py).

    /usr/bin/python3 bench/quant_quality.py [--work build/testdata/mini]

Uses the conversions and held-out texts that tests/reference/prepare.py
makes (run `ctest -R prepare_reference` or the script itself first).
"""
import argparse
import json
import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CRIA = os.path.join(ROOT, "build", "bin", "cria")
VARIANTS = [("f32", "f32"), ("f16", "f16"), ("q8", "q8 (g32)"), ("q4", "q4 g32"), ("q4g128", "q4 g128")]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default=os.path.join(ROOT, "build", "testdata", "mini"))
    args = ap.parse_args()
    print("| model | weights | bits/weight | held-out perplexity (cria) | vs PyTorch f32 |")
    print("|---|---|---|---|---|")
    for model, fixture in (("llama-mini", "mini-llama"), ("falcon-mini", "mini-falcon")):
        fx = json.load(open(os.path.join(ROOT, "tests", "reference", "fixtures", fixture + ".json")))["perplexity"]
        held = os.path.join(args.work, model, "corpus", model, "heldout.txt")
        print(f"| {model} | PyTorch reference, f32 | 32 | {fx['ppl']:.4f} | |")
        for f, label in VARIANTS:
            path = os.path.join(args.work, model, f + ".cria")
            out = subprocess.run([CRIA, "perplexity", "-m", path, "--file", held, "--ctx", str(fx["n_ctx"])],
                                 check=True, capture_output=True, text=True).stdout
            ppl = float(out.strip().splitlines()[-1].split()[1])
            bpw = json.loads(subprocess.run([CRIA, "inspect", path, "--json"], check=True, capture_output=True,
                                            text=True).stdout)["bits_per_weight"]
            print(f"| {model} | {label} | {bpw:.2f} | {ppl:.4f} | {100 * (ppl / fx['ppl'] - 1):+.3f}% |")


if __name__ == "__main__":
    main()
