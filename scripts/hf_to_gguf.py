#!/usr/bin/python3
"""Converts a Hugging Face Llama 3 / Falcon checkpoint directory to GGUF v3,
following llama.cpp's convert_hf_to_gguf.py conventions, so llama.cpp can
serve as a peer in benchmarks and as a second opinion in tests.

    /usr/bin/python3 scripts/hf_to_gguf.py MODEL_DIR --out FILE.gguf --type f32|f16|bf16|q8_0|q4_0
    /usr/bin/python3 scripts/hf_to_gguf.py --dump FILE.gguf

What llama.cpp does and this mirrors:
- llama: attn_q / attn_k rows are permuted per head, (n_head, 2, d/2) ->
  (n_head, d/2, 2), so HF's rotate_half pairs (i, i+d/2) become adjacent and
  ggml's "normal" RoPE applies (LlamaModel.permute). Llama 3.1 rope scaling
  becomes a rope_freqs.weight tensor of per-frequency divisors
  (LlamaModel.generate_extra_tensors). Tied embeddings: no output.weight.
- falcon: query_key_value rows are regrouped from per-kv-group
  [q.. , k, v] into [all q; all k; all v] (FalconModel.modify_tensors;
  a no-op for 7B's multi-query layout). tensor_data_layout = "jploski".
- 1-D tensors, *_norm.weight and biases stay F32; Q8_0/Q4_0 rows whose
  length is not a multiple of 32 fall back to F16 (gguf-py's QuantError path).
Deliberate differences (documented in tests/reference/README.md):
- rope_freqs uses rope_scaling.original_max_position_embeddings (HF's
  semantics); llama.cpp reads a top-level key and falls back to 8192.
- falcon.rope.freq_base is written when config.json has rope_theta
  (Falcon2-11B: 500042); llama.cpp's FalconModel omits it.
- falcon.context_length is max_position_embeddings when present (else 2048).
- q4_0 (not a llama.cpp convert type) quantizes every 2-D weight, like
  llama-quantize --pure.
- falcon-rw (ALiBi, sequential block) is refused: llama.cpp's falcon graph
  has neither.
Tensors are streamed in row chunks (bounded memory for 8B models).
"""
import argparse
import math
import os
import re
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pylib import gguf_io as GG  # noqa: E402
from pylib.hf_checkpoint import Checkpoint  # noqa: E402

CHUNK_ELEMS = 1 << 24
TOKEN_NORMAL, TOKEN_CONTROL, TOKEN_USER_DEFINED, TOKEN_UNUSED = 1, 3, 4, 5

LLAMA_NAMES = [(r"model\.embed_tokens\.(\w+)", "token_embd.{0}"),
               (r"model\.norm\.(\w+)", "output_norm.{0}"),
               (r"lm_head\.(\w+)", "output.{0}"),
               (r"model\.layers\.(\d+)\.input_layernorm\.(\w+)", "blk.{0}.attn_norm.{1}"),
               (r"model\.layers\.(\d+)\.self_attn\.q_proj\.(\w+)", "blk.{0}.attn_q.{1}"),
               (r"model\.layers\.(\d+)\.self_attn\.k_proj\.(\w+)", "blk.{0}.attn_k.{1}"),
               (r"model\.layers\.(\d+)\.self_attn\.v_proj\.(\w+)", "blk.{0}.attn_v.{1}"),
               (r"model\.layers\.(\d+)\.self_attn\.o_proj\.(\w+)", "blk.{0}.attn_output.{1}"),
               (r"model\.layers\.(\d+)\.post_attention_layernorm\.(\w+)", "blk.{0}.ffn_norm.{1}"),
               (r"model\.layers\.(\d+)\.mlp\.gate_proj\.(\w+)", "blk.{0}.ffn_gate.{1}"),
               (r"model\.layers\.(\d+)\.mlp\.up_proj\.(\w+)", "blk.{0}.ffn_up.{1}"),
               (r"model\.layers\.(\d+)\.mlp\.down_proj\.(\w+)", "blk.{0}.ffn_down.{1}")]
FALCON_NAMES = [(r"transformer\.word_embeddings\.(\w+)", "token_embd.{0}"),
                (r"transformer\.ln_f\.(\w+)", "output_norm.{0}"),
                (r"lm_head\.(\w+)", "output.{0}"),
                # gguf-py tensor_mapping: ATTN_NORM <- input_layernorm (falcon7b) and
                # ln_mlp (falcon40b); ATTN_NORM_2 <- ln_attn (falcon40b).
                (r"transformer\.h\.(\d+)\.(?:input_layernorm|ln_mlp)\.(\w+)", "blk.{0}.attn_norm.{1}"),
                (r"transformer\.h\.(\d+)\.ln_attn\.(\w+)", "blk.{0}.attn_norm_2.{1}"),
                (r"transformer\.h\.(\d+)\.self_attention\.query_key_value\.(\w+)", "blk.{0}.attn_qkv.{1}"),
                (r"transformer\.h\.(\d+)\.self_attention\.dense\.(\w+)", "blk.{0}.attn_output.{1}"),
                (r"transformer\.h\.(\d+)\.mlp\.dense_h_to_4h\.(\w+)", "blk.{0}.ffn_up.{1}"),
                (r"transformer\.h\.(\d+)\.mlp\.dense_4h_to_h\.(\w+)", "blk.{0}.ffn_down.{1}")]


def gguf_name(table, name):
    for pat, fmt in table:
        m = re.fullmatch(pat, name)
        if m:
            return fmt.format(*m.groups())
    raise ValueError(f"no GGUF name for tensor {name}")


def llama_permutation(rows, n_head):
    """Row order of LlamaModel.permute: within each head, rows (i, i+d/2) -> (2i, 2i+1)."""
    d = rows // n_head
    return np.arange(rows).reshape(n_head, 2, d // 2).swapaxes(1, 2).reshape(rows)


def falcon_qkv_permutation(n_head, n_kv, head_dim):
    """Rows of the fused qkv, per-group [q*(n_head/n_kv), k, v] -> [all q; all k; all v]."""
    idx = np.arange((n_head + 2 * n_kv) * head_dim).reshape(n_kv, n_head // n_kv + 2, head_dim)
    return np.concatenate([idx[:, :-2].reshape(-1), idx[:, -2].reshape(-1), idx[:, -1].reshape(-1)])


def llama3_rope_factors(c):
    """LlamaModel.generate_extra_tensors, float32 like torch: divisor of each inv_freq."""
    rs = c["rope_scaling"]
    base = c.get("rope_theta", 10000.0)
    dim = c.get("head_dim") or c["hidden_size"] // c["num_attention_heads"]
    freqs = (np.float32(1.0) / (np.float32(base) ** (np.arange(0, dim, 2, dtype=np.float32) / np.float32(dim))))
    factor = rs.get("factor", 8.0)
    low, high = rs.get("low_freq_factor", 1.0), rs.get("high_freq_factor", 4.0)
    old_ctx = rs.get("original_max_position_embeddings", c.get("original_max_position_embeddings", 8192))
    out = []
    for f in freqs:
        wavelen = np.float32(2 * math.pi) / f
        if wavelen < old_ctx / high:
            out.append(1.0)
        elif wavelen > old_ctx / low:
            out.append(factor)
        else:
            smooth = (old_ctx / wavelen - low) / (high - low)
            out.append(1 / ((1 - smooth) / factor + smooth))
    return np.array(out, dtype=np.float32)


class Plan:
    """Metadata + tensor list for one checkpoint; nothing is loaded yet."""

    def __init__(self, path, out_type):
        self.ck = Checkpoint(path)
        self.c = c = self.ck.config
        self.tok = self.ck.json("tokenizer.json")
        self.tcfg = self.ck.json("tokenizer_config.json") or {}
        if self.tok is None:
            raise SystemExit("hf_to_gguf: tokenizer.json missing")
        arch = c["architectures"][0]
        self.w = GG.Writer()
        self.perms, self.extra = {}, {}
        if arch == "LlamaForCausalLM":
            self.arch, table = "llama", LLAMA_NAMES
            self._llama_params()
        elif arch in ("FalconForCausalLM", "RWForCausalLM"):
            self.arch, table = "falcon", FALCON_NAMES
            self._falcon_params()
        else:
            raise SystemExit(f"hf_to_gguf: unsupported architecture {arch}")
        self._vocab()
        self.w.add("general.quantization_version", GG.UINT32, 2)
        self.w.add("general.alignment", GG.UINT32, GG.ALIGNMENT)
        self.w.add("general.file_type", GG.UINT32, GG.FILE_TYPES[out_type])
        self.sources = {}
        names = sorted(self.ck.names(), key=_module_order)
        for gname, arr in self.extra.items():
            self.w.add_tensor(gname, arr.shape, "F32")
        for n in names:
            g = gguf_name(table, n)
            _, shape = self.ck.info(n)
            self.sources[g] = n
            self.w.add_tensor(g, shape, self._type_for(g, shape, out_type))

    def _type_for(self, g, shape, out_type):
        if len(shape) <= 1 or g.endswith("_norm.weight") or not g.endswith(".weight"):
            return "F32"
        t = out_type.upper()
        if t in ("Q8_0", "Q4_0") and shape[-1] % 32:
            return "F16"
        return t

    def _llama_params(self):
        c, w, a = self.c, self.w, "llama"
        w.add("general.architecture", GG.STRING, a)
        w.add("general.type", GG.STRING, "model")
        w.add("general.name", GG.STRING, os.path.basename(os.path.normpath(self.ck.path)))
        n_head = c["num_attention_heads"]
        n_kv = c.get("num_key_value_heads", n_head)
        w.add(f"{a}.block_count", GG.UINT32, c["num_hidden_layers"])
        w.add(f"{a}.context_length", GG.UINT32, c["max_position_embeddings"])
        w.add(f"{a}.embedding_length", GG.UINT32, c["hidden_size"])
        w.add(f"{a}.feed_forward_length", GG.UINT32, c["intermediate_size"])
        w.add(f"{a}.attention.head_count", GG.UINT32, n_head)
        w.add(f"{a}.attention.head_count_kv", GG.UINT32, n_kv)
        w.add(f"{a}.rope.freq_base", GG.FLOAT32, c.get("rope_theta", 10000.0))
        w.add(f"{a}.attention.layer_norm_rms_epsilon", GG.FLOAT32, c["rms_norm_eps"])
        if c.get("head_dim"):
            w.add(f"{a}.attention.key_length", GG.UINT32, c["head_dim"])
            w.add(f"{a}.attention.value_length", GG.UINT32, c["head_dim"])
        w.add(f"{a}.vocab_size", GG.UINT32, c["vocab_size"])
        w.add(f"{a}.rope.dimension_count", GG.UINT32, c.get("head_dim") or c["hidden_size"] // n_head)
        rs = c.get("rope_scaling")
        if rs and rs.get("rope_type", rs.get("type")) == "llama3":
            self.extra["rope_freqs.weight"] = llama3_rope_factors(c)
        elif rs:
            raise SystemExit(f"hf_to_gguf: rope_scaling {rs} not supported")
        for i in range(c["num_hidden_layers"]):
            for proj, heads in (("q", n_head), ("k", n_kv)):
                for part in ("weight", "bias"):
                    n = f"model.layers.{i}.self_attn.{proj}_proj.{part}"
                    if n in self.ck:
                        self.perms[n] = llama_permutation(self.ck.info(n)[1][0], heads)

    def _falcon_params(self):
        c, w, a = self.c, self.w, "falcon"
        if c.get("alibi") or not c.get("parallel_attn", True):
            raise SystemExit("hf_to_gguf: llama.cpp's falcon graph has no ALiBi or sequential "
                             "block (falcon-rw); refusing to write a GGUF it would misread")
        hidden = c.get("hidden_size", c.get("n_embed"))
        n_head = c.get("num_attention_heads", c.get("n_head"))
        new_arch = c.get("new_decoder_architecture", "n_head_kv" in c)
        if new_arch:
            n_kv = c.get("num_kv_heads", c.get("n_head_kv", n_head))
        else:
            n_kv = 1 if c.get("multi_query", True) else n_head
        n_layer = c.get("num_hidden_layers", c.get("n_layer"))
        w.add("general.architecture", GG.STRING, a)
        w.add("general.type", GG.STRING, "model")
        w.add("general.name", GG.STRING, os.path.basename(os.path.normpath(self.ck.path)))
        w.add(f"{a}.context_length", GG.UINT32, c.get("max_position_embeddings", 2048))
        w.add(f"{a}.tensor_data_layout", GG.STRING, "jploski")
        w.add(f"{a}.embedding_length", GG.UINT32, hidden)
        w.add(f"{a}.feed_forward_length", GG.UINT32, c.get("ffn_hidden_size") or 4 * hidden)
        w.add(f"{a}.block_count", GG.UINT32, n_layer)
        w.add(f"{a}.attention.head_count", GG.UINT32, n_head)
        w.add(f"{a}.attention.head_count_kv", GG.UINT32, n_kv)
        w.add(f"{a}.attention.layer_norm_epsilon", GG.FLOAT32, c.get("layer_norm_epsilon", 1e-5))
        if "rope_theta" in c:
            w.add(f"{a}.rope.freq_base", GG.FLOAT32, c["rope_theta"])
        perm = falcon_qkv_permutation(n_head, n_kv, hidden // n_head)
        for i in range(n_layer):
            for part in ("weight", "bias"):
                n = f"transformer.h.{i}.self_attention.query_key_value.{part}"
                if n in self.ck:
                    self.perms[n] = perm

    def _vocab(self):
        """TextModel.get_vocab_base + _set_vocab_gpt2 + gguf.SpecialVocab."""
        w, tok, c = self.w, self.tok, self.c
        vocab = dict(tok["model"]["vocab"])
        added = {t["content"]: t for t in tok["added_tokens"]}
        for t in tok["added_tokens"]:
            vocab[t["content"]] = t["id"]
        n = max(c["vocab_size"], max(vocab.values()) + 1)
        rev = {i: s for s, i in vocab.items()}
        tokens, types = [], []
        for i in range(n):
            s = rev.get(i)
            if s is None:
                tokens.append(f"[PAD{i}]")
                types.append(TOKEN_UNUSED)
            elif s in added:
                tokens.append(s)
                types.append(TOKEN_CONTROL if added[s].get("special") else TOKEN_USER_DEFINED)
            else:
                tokens.append(s)
                types.append(TOKEN_NORMAL)
        merges = [m if isinstance(m, str) else " ".join(m) for m in tok["model"]["merges"]]
        w.add("tokenizer.ggml.model", GG.STRING, "gpt2")
        w.add("tokenizer.ggml.pre", GG.STRING, "llama-bpe" if self.arch == "llama" else "falcon")
        w.add("tokenizer.ggml.tokens", GG.ARRAY, (GG.STRING, tokens))
        w.add("tokenizer.ggml.token_type", GG.ARRAY, (GG.INT32, types))
        w.add("tokenizer.ggml.merges", GG.ARRAY, (GG.STRING, merges))
        for kind in ("bos", "eos"):
            tid = self._special_id(kind, vocab)
            if tid is not None:
                w.add(f"tokenizer.ggml.{kind}_token_id", GG.UINT32, tid)
        w.add("tokenizer.ggml.add_bos_token", GG.BOOL, self._adds_bos())
        if self.tcfg.get("chat_template"):
            w.add("tokenizer.chat_template", GG.STRING, self.tcfg["chat_template"])

    def _special_id(self, kind, vocab):
        t = self.tcfg.get(f"{kind}_token")
        if isinstance(t, dict):
            t = t.get("content")
        if t in vocab:
            return vocab[t]
        v = self.c.get(f"{kind}_token_id")
        return v[0] if isinstance(v, list) else v

    def _adds_bos(self):
        if "add_bos_token" in self.tcfg:
            return bool(self.tcfg["add_bos_token"])
        post = self.tok.get("post_processor") or {}
        steps = post.get("processors", [post])
        return any(s.get("type") == "TemplateProcessing" and "SpecialToken" in s["single"][0]
                   for s in steps)

    def chunks(self, gname, ggml_type):
        if gname in self.extra:
            yield GG.encode_tensor(self.extra[gname], "F32")
            return
        src = self.sources[gname]
        _, shape = self.ck.info(src)
        rows = shape[0]
        row_len = int(np.prod(shape[1:], dtype=np.int64)) if len(shape) > 1 else rows
        if len(shape) == 1:
            x = self.ck.get_f32(src)
            yield GG.encode_tensor(x[self.perms[src]] if src in self.perms else x, ggml_type)
            return
        perm = self.perms.get(src)
        step = max(1, CHUNK_ELEMS // row_len)
        for r0 in range(0, rows, step):
            r1 = min(rows, r0 + step)
            if perm is None:
                x = self.ck.get_f32(src, rows=(r0, r1))
            else:
                x = np.concatenate([self.ck.get_f32(src, rows=(a, b)) for a, b in _runs(perm[r0:r1])])
            yield GG.encode_tensor(x, ggml_type)


def _runs(idx):
    """Consecutive index runs -> [(start, stop)], to read permuted rows in spans."""
    out, start = [], idx[0]
    for prev, cur in zip(idx[:-1], idx[1:]):
        if cur != prev + 1:
            out.append((start, prev + 1))
            start = cur
    out.append((start, idx[-1] + 1))
    return out


def _module_order(name):
    m = re.search(r"\.(\d+)\.", name)
    if m:
        return (1, int(m.group(1)), name)
    return (0 if "embed" in name else 2, 0, name)


def convert(model_dir, out, out_type, quiet=False):
    t0 = time.time()
    plan = Plan(model_dir, out_type)
    types = {n: t for n, _, t in plan.w.tensors}
    done = [0]

    def produce(gname):
        yield from plan.chunks(gname, types[gname])
        done[0] += 1
        if not quiet and len(plan.w.tensors) > 50 and done[0] % 20 == 0:
            print(f"  {done[0]}/{len(plan.w.tensors)} tensors", file=sys.stderr)

    plan.w.write(out, produce)
    if not quiet:
        print(f"hf_to_gguf: {model_dir} -> {out} ({out_type}, {len(plan.w.tensors)} tensors, "
              f"{os.path.getsize(out) / 2**20:.1f} MiB, {time.time() - t0:.1f} s)", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model_dir", nargs="?")
    ap.add_argument("--out")
    ap.add_argument("--type", default="f16", choices=sorted(GG.FILE_TYPES))
    ap.add_argument("--dump", metavar="FILE", help="print a GGUF's metadata and tensor table")
    args = ap.parse_args()
    if args.dump:
        r = GG.dump(args.dump, sys.stdout)
        sys.exit(1 if r.validate() else 0)
    if not args.model_dir or not args.out:
        ap.error("MODEL_DIR and --out are required (or --dump FILE)")
    convert(args.model_dir, args.out, args.type)


if __name__ == "__main__":
    main()
