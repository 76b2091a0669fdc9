#!/usr/bin/env python3
"""Undoes scripts/hf_to_gguf.py independently of cria: reads a GGUF file's
tensors, dequantizes them in numpy (gguf_io, a transcription of ggml's C
reference), puts rows back in Hugging Face order (inverse of llama.cpp's
Q/K and Falcon QKV permutations) and writes an f32 Hugging Face directory.
cria's GGUF import is exact when `cria convert GGUF --quant keep`
dequantizes to the same values as `cria convert <this directory> --quant
f32` (tests/formats/test_gguf_import.cc).

    /usr/bin/python3 tests/reference/gguf_to_hf.py ORIGINAL_HF_DIR FILE.gguf OUT_DIR
"""
import os
import shutil
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import hf_to_gguf as H  # noqa: E402
from pylib import gguf_io as GG  # noqa: E402
from pylib import safetensors_io as ST  # noqa: E402


def main():
    hf, gguf, out = sys.argv[1:4]
    plan = H.Plan(hf, "f32")  # names and permutations only; loads no weights
    table = H.LLAMA_NAMES if plan.arch == "llama" else H.FALCON_NAMES
    reader = GG.Reader(gguf)
    present = {t["name"] for t in reader.tensors}
    specs, sources = [], {}
    for name in plan.ck.names():
        g = H.gguf_name(table, name)
        if g not in present:
            continue  # e.g. a tied lm_head
        shape = tuple(reversed(next(t["ne"] for t in reader.tensors if t["name"] == g)))
        specs.append((name, "F32", shape))
        sources[name] = g
    os.makedirs(out, exist_ok=True)

    def produce(name):
        x = reader.tensor(sources[name]).astype(np.float32)
        perm = plan.perms.get(name)
        if perm is not None:
            back = np.empty_like(x)
            back[perm] = x  # the GGUF holds original[perm]
            x = back
        yield x

    ST.write_streaming(os.path.join(out, "model.safetensors"), specs, produce)
    for f in ("config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        if os.path.exists(os.path.join(hf, f)):
            shutil.copy(os.path.join(hf, f), os.path.join(out, f))
    print(f"gguf_to_hf: {gguf} -> {out}: {len(specs)} tensors")


if __name__ == "__main__":
    main()
