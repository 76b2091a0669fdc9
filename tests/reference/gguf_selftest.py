#!/usr/bin/python3
"""Checks scripts/hf_to_gguf.py: metadata, tensor layout transforms and the
Q8_0 / Q4_0 quantizers, against independent math.

    /usr/bin/python3 tests/reference/gguf_selftest.py      (exit 0 = all passed)

- llama attn_q/attn_k: interleaved-pair RoPE (ggml's normal mode) on the GGUF
  rows must equal HF's rotate_half RoPE on the original rows, permuted.
- falcon attn_qkv: splitting [all q; all k; all v] must give the heads the
  reference's _split_heads gives for the fused HF weight.
- Q8_0/Q4_0: bytes equal a scalar transcription of ggml's C reference
  (float32 arithmetic) and the error is within half a quantization step.
- rope_freqs: equal to inv_freq / inv_freq_llama3 of the reference.
"""
import math
import os
import struct
import sys
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import llama_ref  # noqa: E402
import refmodel as R  # noqa: E402
import gen_checkpoint as G  # noqa: E402
import hf_to_gguf as H  # noqa: E402
from pylib import gguf_io as GG  # noqa: E402
from pylib.hf_checkpoint import Checkpoint  # noqa: E402

FAILED = []


def check(name, ok, detail=""):
    print(f"{'ok  ' if ok else 'FAIL'} {name} {detail}")
    if not ok:
        FAILED.append(name)


def scalar_q8_0(block):
    x = [np.float32(v) for v in block]
    amax = np.float32(0)
    for v in x:
        amax = max(amax, np.float32(abs(v)))
    d = np.float32(amax / np.float32(127))
    inv = np.float32(1) / d if d else np.float32(0)
    qs = [int(math.copysign(math.floor(abs(float(v * inv)) + 0.5), float(v * inv))) for v in x]
    return struct.pack("<e", float(d)) + struct.pack("<32b", *qs)


def scalar_q4_0(block):
    x = [np.float32(v) for v in block]
    amax, mx = np.float32(0), np.float32(0)
    for v in x:
        if amax < abs(v):
            amax, mx = np.float32(abs(v)), v
    d = np.float32(mx / np.float32(-8))
    inv = np.float32(1) / d if d else np.float32(0)
    q = [min(15, int(np.float32(v * inv) + np.float32(8.5))) for v in x]  # int(): C truncation
    return struct.pack("<e", float(d)) + bytes(q[j] | (q[j + 16] << 4) for j in range(16))


def test_quantizers():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((64, 96)).astype(np.float32)
    x[0, :32] = 0  # all-zero block
    x[1, :32] = np.linspace(-1, 1, 32)  # ties in |max|: the first one wins
    x[2, 5] = 50.0  # outlier
    for name, fn, scalar in (("Q8_0", GG.quantize_q8_0, scalar_q8_0), ("Q4_0", GG.quantize_q4_0, scalar_q4_0)):
        q = fn(x)
        want = b"".join(scalar(x.reshape(-1, 32)[i]) for i in range(0, 12))
        check(f"{name}: bytes == scalar ggml reference", q.tobytes()[:len(want)] == want)
        deq = GG.dequantize(q.tobytes(), name, x.shape)
        d = np.abs(GG.dequantize(q.tobytes(), name, x.shape).reshape(-1, 32) - x.reshape(-1, 32))
        step = np.abs(q.reshape(-1, GG.GGML_TYPES[name][2])[:, :2].copy().view("<f2").astype(np.float32))
        # Q4_0 clamps +8 steps to +7, so its worst case is one full step; both
        # scale with the float32 d but store it as fp16 (up to 127 * 2^-11 d more)
        bound = step * (1.01 if name == "Q4_0" else 0.57) + 1e-7
        rel = np.sqrt(((deq - x) ** 2).mean() / (x ** 2).mean())
        check(f"{name}: error within {'one step' if name == 'Q4_0' else 'half a step'}",
              bool((d <= bound).all()), f"rms rel {rel:.4f}")


def interleaved_rope(q, pos, freqs):
    """ggml's normal RoPE: rotates adjacent pairs (2i, 2i+1)."""
    out = q.copy()
    for i, f in enumerate(freqs):
        c, s = np.cos(pos * f), np.sin(pos * f)
        a, b = q[..., 2 * i], q[..., 2 * i + 1]
        out[..., 2 * i], out[..., 2 * i + 1] = a * c - b * s, a * s + b * c
    return out


def test_llama(tmp, preset, out_type):
    d = os.path.join(tmp, preset)
    if not os.path.exists(d):
        G.generate(preset, d, quiet=True)
    path = os.path.join(tmp, f"{preset}.{out_type}.gguf")
    H.convert(d, path, out_type, quiet=True)
    r, ck = GG.Reader(path), Checkpoint(d)
    c = ck.config
    check(f"{preset} {out_type}: valid layout", not r.validate())
    hd = c.get("head_dim") or c["hidden_size"] // c["num_attention_heads"]
    kv = r.kv
    check(f"{preset} {out_type}: metadata", kv["general.architecture"] == "llama"
          and kv["llama.block_count"] == c["num_hidden_layers"]
          and kv["llama.attention.head_count_kv"] == c["num_key_value_heads"]
          and kv["llama.rope.dimension_count"] == hd and len(kv["tokenizer.ggml.tokens"]) == c["vocab_size"]
          and kv["tokenizer.ggml.bos_token_id"] == c["bos_token_id"] and kv["tokenizer.ggml.add_bos_token"])
    names = [t["name"] for t in r.tensors]
    check(f"{preset} {out_type}: output.weight iff untied",
          ("output.weight" in names) == (not c.get("tie_word_embeddings", False)))
    if out_type != "f32":
        return
    cfg = llama_ref.LlamaConfig(c)
    inv, _ = llama_ref.rope_inv_freq(cfg)
    freqs = inv.double().numpy()
    pos = np.arange(7, dtype=np.float64)[:, None, None]
    x = np.random.default_rng(3).standard_normal((7, c["hidden_size"]))
    for proj, heads in (("q", cfg.num_heads), ("k", cfg.num_kv_heads)):
        w_hf = ck.get_f32(f"model.layers.0.self_attn.{proj}_proj.weight").astype(np.float64)
        w_gg = r.tensor(f"blk.0.attn_{proj}.weight").astype(np.float64)
        q_hf = (x @ w_hf.T).reshape(7, heads, hd)
        z = q_hf[..., : hd // 2] + 1j * q_hf[..., hd // 2:]
        z = z * np.exp(1j * pos * freqs)
        hf_rot = np.concatenate([z.real, z.imag], -1)  # rotate_half RoPE
        gg_rot = interleaved_rope((x @ w_gg.T).reshape(7, heads, hd), pos[:, :, 0], freqs)
        perm = H.llama_permutation(hd, 1)
        check(f"{preset}: attn_{proj} permutation + interleaved RoPE == HF RoPE",
              np.allclose(gg_rot, hf_rot[..., perm], atol=1e-9))
    if "rope_freqs.weight" in names:
        want = (inv / llama_ref.rope_inv_freq(llama_ref.LlamaConfig(dict(c, rope_scaling=None)))[0]) ** -1
        got = r.tensor("rope_freqs.weight")
        check(f"{preset}: rope_freqs == HF inv_freq ratio", np.allclose(got, want.numpy(), rtol=1e-5),
              f"{got[:2]}..{got[-2:]}")


def test_falcon(tmp, preset, out_type):
    d = os.path.join(tmp, preset)
    if not os.path.exists(d):
        G.generate(preset, d, quiet=True)
    path = os.path.join(tmp, f"{preset}.{out_type}.gguf")
    H.convert(d, path, out_type, quiet=True)
    r = GG.Reader(path)
    model = R.load_model(d)
    c = model.cfg
    check(f"{preset} {out_type}: valid layout", not r.validate())
    kv_heads = c.num_kv_heads if c.new_decoder_architecture else 1
    kv = r.kv
    check(f"{preset} {out_type}: metadata", kv["general.architecture"] == "falcon"
          and kv["falcon.attention.head_count"] == c.num_heads
          and kv["falcon.attention.head_count_kv"] == kv_heads
          and kv["falcon.feed_forward_length"] == c.ffn_hidden_size
          and kv.get("falcon.rope.freq_base", 10000.0) == np.float32(c.rope_theta)
          and kv["tokenizer.ggml.eos_token_id"] == 11 and not kv["tokenizer.ggml.add_bos_token"])
    names = [t["name"] for t in r.tensors]
    n_ln = c.num_ln_in_parallel_attn == 2
    check(f"{preset} {out_type}: attn_norm_2 iff two norms", ("blk.0.attn_norm_2.weight" in names) == n_ln)
    if out_type != "f32":
        return
    x = torch.randn(1, 5, c.hidden_size)
    fused = model._linear(x, "transformer.h.0.self_attention.query_key_value")
    q, k, v = model._split_heads(fused)
    g = x[0] @ torch.from_numpy(r.tensor("blk.0.attn_qkv.weight")).T
    hd, per = c.head_dim, c.num_heads // kv_heads
    gq, gk, gv = g.split([c.num_heads * hd, kv_heads * hd, kv_heads * hd], dim=-1)
    ok = torch.allclose(gq.view(5, c.num_heads, hd), q[0], atol=1e-5)
    for j in range(kv_heads):  # GGUF kv head j serves q heads j*per .. j*per+per-1
        ok &= torch.allclose(gk.view(5, kv_heads, hd)[:, j], k[0][:, j * per], atol=1e-5)
        ok &= torch.allclose(gv.view(5, kv_heads, hd)[:, j], v[0][:, j * per], atol=1e-5)
    check(f"{preset}: attn_qkv [q; k; v] split == HF _split_heads", bool(ok))


def main():
    torch.set_num_threads(2)
    torch.manual_seed(0)
    test_quantizers()
    with tempfile.TemporaryDirectory() as tmp:
        for t in ("f32", "q8_0", "q4_0"):
            for p in ("ref-llama31-scaled", "ref-llama-hd128-tied"):
                test_llama(tmp, p, t)
            for p in ("ref-falcon-7b", "ref-falcon-40b", "ref-falcon2-11b"):
                test_falcon(tmp, p, t)
        if os.path.exists(G.LLAMA3_TOKENIZER_DIR):
            test_llama(tmp, "llama3.1-8b", "q4_0")
    if FAILED:
        sys.exit(f"gguf_selftest: {len(FAILED)} failed: {FAILED}")
    print("gguf_selftest: all passed")


if __name__ == "__main__":
    main()
