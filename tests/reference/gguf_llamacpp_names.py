#!/usr/bin/env python3
"""Writes an f32 GGUF whose tensor names come from llama.cpp's own mapping,
not from scripts/hf_to_gguf.py's table, so that an importer and our writer
cannot agree on a mistake (they once both swapped Falcon-40B's two norms).

    /usr/bin/python3 tests/reference/gguf_llamacpp_names.py HF_DIR OUT.gguf

The table below is transcribed from llama.cpp's gguf-py
(`gguf/tensor_mapping.py`, TensorNameMap block_mappings_cfg and
mappings_cfg, the entries for llama-hf, falcon7b and falcon40b; GGUF names
from `gguf/constants.py` TENSOR_NAMES). Row transforms (llama.cpp's Q/K
permutation, Falcon's QKV regrouping, rope_freqs) are still hf_to_gguf.py's:
tests/reference/gguf_selftest.py checks those against RoPE and attention math.
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import hf_to_gguf as H  # noqa: E402

# GGUF name -> the Hugging Face module names gguf-py maps onto it.
LLAMA_CPP_MAPPING = {
    "token_embd": ["transformer.word_embeddings", "model.embed_tokens"],
    "output_norm": ["transformer.ln_f", "model.norm"],
    "output": ["lm_head"],
    "blk.{bid}.attn_norm": ["transformer.h.{bid}.input_layernorm",  # falcon7b
                            "transformer.h.{bid}.ln_mlp",           # falcon40b
                            "model.layers.{bid}.input_layernorm"],  # llama-hf
    "blk.{bid}.attn_norm_2": ["transformer.h.{bid}.ln_attn"],       # falcon40b
    "blk.{bid}.attn_qkv": ["transformer.h.{bid}.self_attention.query_key_value"],
    "blk.{bid}.attn_q": ["model.layers.{bid}.self_attn.q_proj"],
    "blk.{bid}.attn_k": ["model.layers.{bid}.self_attn.k_proj"],
    "blk.{bid}.attn_v": ["model.layers.{bid}.self_attn.v_proj"],
    "blk.{bid}.attn_output": ["transformer.h.{bid}.self_attention.dense", "model.layers.{bid}.self_attn.o_proj"],
    "blk.{bid}.ffn_norm": ["model.layers.{bid}.post_attention_layernorm"],
    "blk.{bid}.ffn_gate": ["model.layers.{bid}.mlp.gate_proj"],
    "blk.{bid}.ffn_up": ["transformer.h.{bid}.mlp.dense_h_to_4h", "model.layers.{bid}.mlp.up_proj"],
    "blk.{bid}.ffn_down": ["transformer.h.{bid}.mlp.dense_4h_to_h", "model.layers.{bid}.mlp.down_proj"],
}


def name_table():
    """[(regex over an HF tensor name, GGUF format string)] for hf_to_gguf."""
    table = []
    for gguf, sources in LLAMA_CPP_MAPPING.items():
        for src in sources:
            pat = re.escape(src).replace(re.escape("{bid}"), r"(\d+)") + r"\.(\w+)"
            fmt = gguf.replace("{bid}", "{0}") + (".{1}" if "{bid}" in gguf else ".{0}")
            table.append((pat, fmt))
    return table


def main():
    hf, out = sys.argv[1:3]
    H.LLAMA_NAMES = H.FALCON_NAMES = name_table()
    H.convert(hf, out, "f32", quiet=True)


if __name__ == "__main__":
    main()
