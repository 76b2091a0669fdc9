#!/usr/bin/env python3
"""Builds what the C++ model tests read, converted by `cria convert` to f32,
f16, q8 and q4 (group 32 and 128):
  - for each golden fixture, its checkpoint regenerated with the fixture's
    `generate` command and sha256-checked against it (into OUT/ref/NAME/);
  - reduced checkpoints of the public model presets with Hugging Face's
    initialisation scale, for the quantization-quality checks (OUT/quant/NAME/).

    /usr/bin/python3 tests/reference/prepare.py --cria build/bin/cria --out build/testdata

Files already present and newer than the cria binary are kept.
"""
import argparse
import hashlib
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(ROOT, "tests", "reference", "fixtures")
GGUF_FIXTURES = ["ref-llama-gqa4-hd64", "ref-llama31-scaled", "ref-falcon-7b", "ref-falcon-40b", "ref-falcon2-11b"]
GGUF_TYPES = ["f32", "q8_0", "q4_0"]
QUANT_PRESETS = ["llama3.2-1b", "falcon-7b", "falcon-40b", "falcon2-11b", "falcon-rw-1b"]
QUANTS = [("f32", []), ("f16", []), ("q8", []), ("q4", ["--group", "32"]), ("q4g128", ["--group", "128"])]


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def convert_all(cria, hf, outdir):
    os.makedirs(outdir, exist_ok=True)
    cria_mtime = os.path.getmtime(cria)
    for q, extra in QUANTS:
        out = os.path.join(outdir, q + ".cria")
        if os.path.exists(out) and os.path.getmtime(out) > cria_mtime:
            continue
        quant = "q4" if q.startswith("q4") else q
        subprocess.run([cria, "convert", hf, "-o", out, "--quant", quant] + extra, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cria", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--fixture", nargs="*", help="fixture names (default: all ref-*)")
    args = ap.parse_args()
    names = args.fixture or sorted(f[:-5] for f in os.listdir(FIXTURES) if f.startswith("ref-") and f.endswith(".json"))
    for name in names:
        fx = json.load(open(os.path.join(FIXTURES, name + ".json")))
        hf = os.path.join(args.out, "ref", name, "hf")
        st = os.path.join(hf, "model.safetensors")
        if not os.path.exists(st) or sha256(st) != fx["model_safetensors_sha256"]:
            cmd = fx["generate"].replace("DIR", hf).split()
            subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
            got = sha256(st)
            if got != fx["model_safetensors_sha256"]:
                sys.exit(f"prepare: {name}: regenerated checkpoint does not match the fixture "
                         f"(sha256 {got}); the generator drifted: regenerate the fixtures")
        convert_all(args.cria, hf, os.path.join(args.out, "ref", name))
    # GGUF imports: the file as llama.cpp's conventions write it, imported
    # with --quant keep; and for quantized types the same values dequantized
    # by numpy back into an f32 Hugging Face directory.
    for name in GGUF_FIXTURES:
        hf = os.path.join(args.out, "ref", name, "hf")
        for gt in GGUF_TYPES:
            d = os.path.join(args.out, "gguf", name)
            os.makedirs(d, exist_ok=True)
            gguf = os.path.join(d, gt + ".gguf")
            writer = os.path.join(ROOT, "scripts", "hf_to_gguf.py")
            if not os.path.exists(gguf) or os.path.getmtime(gguf) < max(os.path.getmtime(os.path.join(hf, "model.safetensors")),
                                                                        os.path.getmtime(writer)):
                subprocess.run(["/usr/bin/python3", writer, hf, "--out", gguf,
                                "--type", gt], check=True, stdout=subprocess.DEVNULL)
            keep = os.path.join(d, gt + ".cria")
            if not os.path.exists(keep) or os.path.getmtime(keep) < max(os.path.getmtime(args.cria), os.path.getmtime(gguf)):
                subprocess.run([args.cria, "convert", gguf, "-o", keep], check=True, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
            if gt == "f32":
                continue
            back = os.path.join(d, gt + "-back")
            back_cria = back + ".cria"
            if not os.path.exists(back_cria) or os.path.getmtime(back_cria) < max(os.path.getmtime(args.cria),
                                                                                   os.path.getmtime(gguf)):
                subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "tests", "reference", "gguf_to_hf.py"), hf, gguf,
                                back], check=True, stdout=subprocess.DEVNULL)
                subprocess.run([args.cria, "convert", back, "-o", back_cria, "--quant", "f32"], check=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # The same f32 weights under tensor names taken from llama.cpp's own
    # mapping (not hf_to_gguf.py's): the importer must agree with the peer.
    for name in GGUF_FIXTURES:
        hf = os.path.join(args.out, "ref", name, "hf")
        d = os.path.join(args.out, "gguf", name)
        gguf = os.path.join(d, "f32-llamacpp-names.gguf")
        script = os.path.join(ROOT, "tests", "reference", "gguf_llamacpp_names.py")
        if not os.path.exists(gguf) or os.path.getmtime(gguf) < max(os.path.getmtime(os.path.join(hf, "model.safetensors")),
                                                                    os.path.getmtime(script)):
            subprocess.run(["/usr/bin/python3", script, hf, gguf], check=True, stdout=subprocess.DEVNULL)
        cria = os.path.join(d, "f32-llamacpp-names.cria")
        if not os.path.exists(cria) or os.path.getmtime(cria) < max(os.path.getmtime(args.cria), os.path.getmtime(gguf)):
            subprocess.run([args.cria, "convert", gguf, "-o", cria], check=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    # The trained miniatures, and their held-out text (rebuilt from Debian's
    # fortunes by the training script, checked against the fixture's sha256).
    for mini in ("llama-mini", "falcon-mini"):
        src = os.path.join(ROOT, "examples", "models", mini)
        if not os.path.exists(os.path.join(src, "config.json")):
            continue
        convert_all(args.cria, src, os.path.join(args.out, "mini", mini))
        fx = json.load(open(os.path.join(FIXTURES, "mini-" + mini.split("-")[0] + ".json")))
        held = os.path.join(args.out, "mini", mini, "corpus", mini, "heldout.txt")
        if not os.path.exists(held) or sha256(held) != fx["perplexity"]["file_sha256"]:
            subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "scripts", "train_miniature.py"), "--model", mini,
                            "--corpus-only", "--build", os.path.join(args.out, "mini", mini, "corpus")], check=True,
                           stdout=subprocess.DEVNULL)
            if sha256(held) != fx["perplexity"]["file_sha256"]:
                sys.exit(f"prepare: {held} differs from the text the fixture's perplexity was computed on")
    for preset in QUANT_PRESETS:
        hf = os.path.join(args.out, "quant", preset, "hf")
        if not os.path.exists(os.path.join(hf, "config.json")):
            subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "scripts", "gen_checkpoint.py"), "--preset", preset,
                            "--out", hf], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        convert_all(args.cria, hf, os.path.join(args.out, "quant", preset))
    print(f"prepare: {len(names)} fixtures and {len(QUANT_PRESETS)} presets ready in {args.out}")


if __name__ == "__main__":
    main()
