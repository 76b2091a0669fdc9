#!/usr/bin/python3
"""Golden fixtures: reference logits and greedy tokens for the ref-* presets.

    /usr/bin/python3 tests/reference/gen_fixtures.py [--work DIR] [--preset NAME ...] [--check]

For each preset, generates the checkpoint (scripts/gen_checkpoint.py, seed 0)
into DIR/<preset> (default build/testdata/ref), runs the PyTorch reference on
PROMPT_IDS and writes tests/reference/fixtures/<preset>.json and
<preset>.logits.f32 (see README.md for the format). --check writes nothing
and fails if a fixture would change.
"""
import argparse
import hashlib
import json
import os
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import falcon_ref  # noqa: E402
import llama_ref  # noqa: E402
import refmodel as R  # noqa: E402
import gen_checkpoint as G  # noqa: E402  (refmodel put scripts/ on sys.path)
from pylib import presets as P  # noqa: E402

FIXTURES = os.path.join(HERE, "fixtures")
SEED = 0
N_NEW = 32
# 64 fixed ids in [12, 500): valid in every ref vocabulary and never a
# special token of the synthetic tokenizers (falcon 0..11, llama 502..511,
# gpt2 511).
PROMPT_IDS = [int(x) for x in np.random.default_rng(20240917).integers(12, 500, 64)]


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def summary(config):
    """The architecture facts a C++ test wants without parsing config.json."""
    if P.family(config) == "llama":
        c = llama_ref.LlamaConfig(config)
        return {"family": "llama", "hidden": c.hidden_size, "layers": c.num_layers,
                "heads": c.num_heads, "kv_heads": c.num_kv_heads, "head_dim": c.head_dim,
                "ffn": c.intermediate_size, "vocab": c.vocab_size,
                "tied_embeddings": c.tie_word_embeddings, "rope_theta": c.rope_theta,
                "rope_scaling": c.rope_scaling}
    c = falcon_ref.FalconConfig(config)
    kv = c.num_kv_heads if (c.new_decoder_architecture or not c.multi_query) else 1
    return {"family": "falcon", "hidden": c.hidden_size, "layers": c.num_layers,
            "heads": c.num_heads, "kv_heads": kv, "head_dim": c.head_dim,
            "ffn": c.ffn_hidden_size, "vocab": c.vocab_size,
            "tied_embeddings": c.tie_word_embeddings,
            "positions": "alibi" if c.alibi else f"rope theta={c.rope_theta:g}",
            "new_decoder_architecture": c.new_decoder_architecture,
            "parallel_attn": c.parallel_attn, "norms_per_layer":
                1 if c.parallel_attn and c.num_ln_in_parallel_attn != 2 else 2,
            "bias": c.bias}


def sensitivity(model, config, logits):
    """Max |logit difference| if an implementation made a plausible mistake:
    tells a C++ test whether its tolerance can see that mistake."""
    out = {}

    def diff(m):
        return float((R.prompt_logits(m, PROMPT_IDS) - logits).abs().max())

    if config.get("rope_scaling"):
        c = dict(config, rope_scaling=None)
        out["rope_scaling_ignored"] = diff(type(model)(c, model.w))
    if not config.get("alibi") and config.get("rope_theta", 10000.0) != 10000.0:
        c = dict(config, rope_theta=10000.0)
        out["rope_theta_10000"] = diff(type(model)(c, model.w))
    if config.get("alibi"):
        saved = falcon_ref.build_alibi_tensor
        falcon_ref.build_alibi_tensor = lambda s, h: (falcon_ref.alibi_slopes(h)[:, None, None]
                                                      * torch.arange(s, dtype=torch.float32))
        try:
            out["alibi_without_bf16_rounding"] = diff(model)
        finally:
            falcon_ref.build_alibi_tensor = saved
    return out


def build(preset, work):
    """-> (json dict, logits bytes)."""
    d = os.path.join(work, preset)
    (st_path,) = G.generate(preset, d, seed=SEED, quiet=True)
    model = R.load_model(d)
    with open(os.path.join(d, "config.json"), encoding="utf-8") as f:
        config = json.load(f)
    logits = R.prompt_logits(model, PROMPT_IDS)
    ids, margins = list(PROMPT_IDS), []
    for _ in range(N_NEW):  # greedy by full recomputation, as refmodel.greedy
        last = R.prompt_logits(model, ids)[-1]
        top2 = torch.topk(last, 2).values
        margins.append(float(top2[0] - top2[1]))
        ids.append(int(torch.argmax(last)))
    raw = logits.numpy().astype("<f4").tobytes()
    fixture = {
        "preset": preset,
        "seed": SEED,
        "generate": f"/usr/bin/python3 scripts/gen_checkpoint.py --preset {preset} --seed {SEED} --out DIR",
        "model_safetensors_sha256": sha256_file(st_path),
        "summary": summary(config),
        "prompt_ids": PROMPT_IDS,
        "greedy_ids": ids[len(PROMPT_IDS):],
        "greedy_min_margin": min(margins),
        "max_abs_logit": float(logits.abs().max()),
        "logits_file": f"{preset}.logits.f32",
        "logits_shape": list(logits.shape),
        "logits_sha256": hashlib.sha256(raw).hexdigest(),
        "sensitivity": sensitivity(model, config, logits),
    }
    return fixture, raw


def compare(jpath, bpath, text, raw, fixture):
    """Byte equality is expected on the machine that wrote the fixtures; another
    CPU or torch build may differ in the last bits of the float math, so ids,
    hashes of the inputs and the structure must match exactly and floats to 1e-4."""
    if not (os.path.exists(jpath) and os.path.exists(bpath)):
        return "MISSING"
    old_text, old_raw = open(jpath, encoding="utf-8").read(), open(bpath, "rb").read()
    if old_text == text and old_raw == raw:
        return "identical"
    old = json.loads(old_text)
    exact = ("model_safetensors_sha256", "summary", "prompt_ids", "greedy_ids", "logits_shape")
    if any(old.get(k) != fixture[k] for k in exact) or len(old_raw) != len(raw):
        return "DIFFERS"
    a, b = np.frombuffer(old_raw, "<f4"), np.frombuffer(raw, "<f4")
    return "within 1e-4" if float(np.abs(a - b).max()) <= 1e-4 else "DIFFERS (logits)"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", default=os.path.join(R.ROOT, "build", "testdata", "ref"))
    ap.add_argument("--preset", nargs="*", default=[p for p in sorted(P.PRESETS) if p.startswith("ref-")])
    ap.add_argument("--check", action="store_true", help="compare with the committed fixtures")
    args = ap.parse_args()
    torch.set_num_threads(2)
    os.makedirs(FIXTURES, exist_ok=True)
    failed = []
    for preset in args.preset:
        t0 = time.time()
        fixture, raw = build(preset, args.work)
        text = "{\n" + ",\n".join(f" {json.dumps(k)}: {json.dumps(v)}" for k, v in fixture.items()) + "\n}\n"
        jpath = os.path.join(FIXTURES, preset + ".json")
        bpath = os.path.join(FIXTURES, fixture["logits_file"])
        if args.check:
            status = compare(jpath, bpath, text, raw, fixture)
            if status not in ("identical", "within 1e-4"):
                failed.append(preset)
        else:
            with open(jpath, "w", encoding="utf-8") as f:
                f.write(text)
            with open(bpath, "wb") as f:
                f.write(raw)
            status = "written"
        print(f"{preset:22s} {status}  max|logit| {fixture['max_abs_logit']:.3f}  "
              f"margin {fixture['greedy_min_margin']:.4f}  {fixture['sensitivity']}  "
              f"{time.time() - t0:.1f} s", file=sys.stderr)
    if failed:
        sys.exit(f"gen_fixtures: fixtures differ for {failed}")


if __name__ == "__main__":
    main()
