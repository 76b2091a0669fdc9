#!/usr/bin/env python3
"""Builds the models tests/arm64/test_arm_model.cc reads: for each named golden
fixture (tests/reference/fixtures/NAME.json), the checkpoint regenerated with
the fixture's `generate` command and checked against its sha256, then
converted by the cria under test to f32, f16, q8 and q4 (group 32). In a cross
build CRIA is the emulator wrapper (build-arm64/bin/cria-emulated), so the
conversion itself runs on the emulated CPU.

    /usr/bin/python3 tests/arm64/prepare_models.py --cria CRIA --out DIR NAME...

Files newer than CRIA are kept (the wrapper is rewritten whenever cria is
relinked).
"""
import argparse
import hashlib
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(ROOT, "tests", "reference", "fixtures")
QUANTS = [("f32", ["--quant", "f32"]), ("f16", ["--quant", "f16"]), ("q8", ["--quant", "q8"]), ("q4", ["--quant", "q4", "--group", "32"])]


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cria", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("names", nargs="+")
    args = ap.parse_args()
    cria_mtime = os.path.getmtime(args.cria)
    for name in args.names:
        fx = json.load(open(os.path.join(FIXTURES, name + ".json")))
        hf = os.path.join(args.out, name, "hf")
        st = os.path.join(hf, "model.safetensors")
        if not os.path.exists(st) or sha256(st) != fx["model_safetensors_sha256"]:
            subprocess.run(fx["generate"].replace("DIR", hf).split(), cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
            if sha256(st) != fx["model_safetensors_sha256"]:
                sys.exit(f"prepare_models: {name}: regenerated checkpoint does not match the fixture")
        for q, opts in QUANTS:
            out = os.path.join(args.out, name, q + ".cria")
            if os.path.exists(out) and os.path.getmtime(out) > cria_mtime:
                continue
            p = subprocess.run([args.cria, "convert", hf, "-o", out] + opts, capture_output=True, text=True)
            if p.returncode != 0:
                sys.exit(f"prepare_models: cria convert {name} {q} failed ({p.returncode}): {p.stderr[-2000:]}")
    print(f"prepare_models: {len(args.names)} fixtures ready in {args.out}")


if __name__ == "__main__":
    main()
