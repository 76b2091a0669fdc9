#!/usr/bin/python3
"""Checks the PyTorch references against independent, straightforward math.

    /usr/bin/python3 tests/reference/selftest.py      (exit 0 = all passed; ~30 s)

The independent side is float64 numpy written from the papers' formulas, not
from the HF code: RoPE as complex rotation of (x_i, x_{i+d/2}) pairs, ALiBi
slopes from the paper's geometric sequence, attention as a per-head loop.
"""
import math
import os
import sys
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import falcon_ref  # noqa: E402
import llama_ref  # noqa: E402
import refmodel as R  # noqa: E402
import gen_checkpoint as G  # noqa: E402
from pylib import presets as P  # noqa: E402
from pylib.hf_checkpoint import Checkpoint  # noqa: E402
from pylib.safetensors_io import bf16_bits_to_f32, f32_to_bf16_bits  # noqa: E402

FAILED = []


def check(name, ok, detail=""):
    print(f"{'ok  ' if ok else 'FAIL'} {name} {detail}")
    if not ok:
        FAILED.append(name)


# ---- independent float64 math -------------------------------------------

def paper_alibi_slopes(n):
    """ALiBi paper: heads get 2^(-8k/n), k = 1..n; for n not a power of two,
    the closest power p below n plus the odd-k slopes of 2p."""
    p = 2 ** int(math.floor(math.log2(n)))
    slopes = [2.0 ** (-8.0 * k / p) for k in range(1, p + 1)]
    slopes += [2.0 ** (-8.0 * k / (2 * p)) for k in range(1, 2 * (n - p), 2)]
    return np.array(slopes)


def bf16(x):
    return bf16_bits_to_f32(f32_to_bf16_bits(np.asarray(x, np.float32))).astype(np.float64)


def llama3_scaled_freqs(theta, d, rs):
    """Per frequency, as a scalar loop: keep (wavelength < L/high), divide by
    factor (wavelength > L/low), else interpolate linearly in L/wavelength."""
    out = []
    for i in range(d // 2):
        f = theta ** (-2.0 * i / d)
        if rs is None:
            out.append(f)
            continue
        L, lo, hi, fac = (rs["original_max_position_embeddings"], rs["low_freq_factor"],
                          rs["high_freq_factor"], rs["factor"])
        wl = 2 * math.pi / f
        if wl < L / hi:
            out.append(f)
        elif wl > L / lo:
            out.append(f / fac)
        else:
            s = (L / wl - lo) / (hi - lo)
            out.append((1 - s) * f / fac + s * f)
    return np.array(out)


def rope(x, pos, freqs):
    """x [s, heads, d]: rotate (x_i, x_{i+d/2}) as the complex number x_i + j x_{i+d/2}."""
    d = x.shape[-1]
    z = x[..., : d // 2] + 1j * x[..., d // 2:]
    z = z * np.exp(1j * pos[:, None, None] * freqs[None, None, :])
    return np.concatenate([z.real, z.imag], axis=-1)


def attend(q, k, v, bias=None):
    """q [s, H, d], k/v [s, H, d] (already one per q head); causal; per-head loop."""
    s, H, d = q.shape
    out = np.zeros_like(q)
    for h in range(H):
        sc = q[:, h] @ k[:, h].T
        if bias is not None:
            sc = sc + bias[h]
        sc = sc / math.sqrt(d)
        sc[np.triu_indices(s, 1)] = -np.inf
        p = np.exp(sc - sc.max(-1, keepdims=True))
        out[:, h] = (p / p.sum(-1, keepdims=True)) @ v[:, h]
    return out


def rms(x, w, eps):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w


def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


_erf = np.vectorize(math.erf)


def np_llama(c, W, ids):
    H, KV = c["num_attention_heads"], c["num_key_value_heads"]
    d = c.get("head_dim") or c["hidden_size"] // H
    eps = c["rms_norm_eps"]
    freqs = llama3_scaled_freqs(c["rope_theta"], d, c.get("rope_scaling"))
    pos = np.arange(len(ids), dtype=np.float64)
    h = W["model.embed_tokens.weight"][ids]
    for i in range(c["num_hidden_layers"]):
        p = f"model.layers.{i}."
        x = rms(h, W[p + "input_layernorm.weight"], eps)
        q = rope((x @ W[p + "self_attn.q_proj.weight"].T).reshape(len(ids), H, d), pos, freqs)
        k = rope((x @ W[p + "self_attn.k_proj.weight"].T).reshape(len(ids), KV, d), pos, freqs)
        v = (x @ W[p + "self_attn.v_proj.weight"].T).reshape(len(ids), KV, d)
        group = [hq * KV // H for hq in range(H)]  # q head -> its kv head
        o = attend(q, k[:, group], v[:, group]).reshape(len(ids), H * d)
        h = h + o @ W[p + "self_attn.o_proj.weight"].T
        x = rms(h, W[p + "post_attention_layernorm.weight"], eps)
        g = x @ W[p + "mlp.gate_proj.weight"].T
        h = h + (g / (1 + np.exp(-g)) * (x @ W[p + "mlp.up_proj.weight"].T)) @ W[p + "mlp.down_proj.weight"].T
    lm = W.get("lm_head.weight", W["model.embed_tokens.weight"])
    return rms(h, W["model.norm.weight"], eps) @ lm.T


def np_falcon(c, W, ids):
    hid, H, KV, d, _ = P.falcon_dims(c)
    new_arch = c.get("new_decoder_architecture", False)
    eps, s = c["layer_norm_epsilon"], len(ids)
    pos = np.arange(s, dtype=np.float64)
    if c.get("alibi"):  # HF rounds slope, position and their product to bfloat16
        bias = np.stack([bf16(bf16(m) * bf16(pos)) for m in paper_alibi_slopes(H)])[:, None, :]
    else:
        freqs = c.get("rope_theta", 10000.0) ** (-2.0 * np.arange(d // 2) / d)

    def lin(x, name):
        return x @ W[name + ".weight"].T + W.get(name + ".bias", 0.0)

    def ln(x, name):
        return layer_norm(x, W[name + ".weight"], W[name + ".bias"], eps)

    h = W["transformer.word_embeddings.weight"][ids]
    n_ln = c.get("num_ln_in_parallel_attn") or (2 if new_arch else 1)
    for i in range(c.get("num_hidden_layers", c.get("n_layer"))):
        p = f"transformer.h.{i}."
        xa = ln(h, p + ("ln_attn" if new_arch and n_ln == 2 else "input_layernorm"))
        qkv = lin(xa, p + "self_attention.query_key_value")
        if new_arch:  # groups of [H/KV queries, key, value]
            g = qkv.reshape(s, KV, H // KV + 2, d)
            q = g[:, :, :-2].reshape(s, H, d)
            k = np.repeat(g[:, :, -2], H // KV, axis=1)
            v = np.repeat(g[:, :, -1], H // KV, axis=1)
        elif c.get("multi_query", True):  # all queries, one key, one value
            q = qkv[:, : H * d].reshape(s, H, d)
            k = np.repeat(qkv[:, H * d:(H + 1) * d][:, None], H, axis=1)
            v = np.repeat(qkv[:, (H + 1) * d:][:, None], H, axis=1)
        else:  # per head: query, key, value
            g = qkv.reshape(s, H, 3, d)
            q, k, v = g[:, :, 0], g[:, :, 1], g[:, :, 2]
        if c.get("alibi"):
            o = attend(q, k, v, bias)
        else:
            o = attend(rope(q, pos, freqs), rope(k, pos, freqs), v)
        a = lin(o.reshape(s, H * d), p + "self_attention.dense")
        if not c.get("parallel_attn", True):
            h = h + a
            xm = ln(h, p + "post_attention_layernorm")
            a = 0.0
        else:
            xm = ln(h, p + "ln_mlp") if new_arch and n_ln == 2 else xa
        u = lin(xm, p + "mlp.dense_h_to_4h")
        h = h + a + lin(0.5 * u * (1 + _erf(u / math.sqrt(2))), p + "mlp.dense_4h_to_h")
    lm = W.get("lm_head.weight", W["transformer.word_embeddings.weight"])
    return ln(h, "transformer.ln_f") @ lm.T


# ---- the checks ------------------------------------------------------------

def test_rope_and_slopes():
    cfg = llama_ref.LlamaConfig({"vocab_size": 8, "hidden_size": 64, "num_hidden_layers": 1,
                                 "num_attention_heads": 1, "intermediate_size": 8,
                                 "rope_theta": 500000.0})
    x = torch.randn(1, 3, 9, 64, dtype=torch.float64)
    inv, _ = llama_ref.rope_inv_freq(cfg)
    cos, sin = llama_ref.rotary_cos_sin(inv.double(), 1.0, torch.arange(9)[None])
    got = llama_ref.apply_rotary_pos_emb(x, x, cos.double(), sin.double())[0][0].permute(1, 0, 2)
    want = rope(x[0].permute(1, 0, 2).numpy(), np.arange(9.0), inv.double().numpy())
    # cos/sin are float32 in HF (computed under autocast-disabled float32)
    check("rope: rotate_half == complex rotation of (i, i+d/2)", np.allclose(got.numpy(), want, atol=1e-5))
    for L in (8192, 32):
        rs = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
              "original_max_position_embeddings": L}
        cfg.rope_scaling = rs
        got = llama_ref.rope_inv_freq(cfg)[0].double().numpy()
        want = llama3_scaled_freqs(500000.0, 64, rs)
        check(f"rope: llama3 scaled frequencies (L={L})", np.allclose(got, want, rtol=1e-6),
              f"max rel {np.abs(got / want - 1).max():.1e}")
    for n in (8, 12, 32, 71):
        got = falcon_ref.alibi_slopes(n).double().numpy()
        check(f"alibi: slopes for {n} heads match the paper", np.allclose(got, paper_alibi_slopes(n), rtol=1e-6))
    t = falcon_ref.build_alibi_tensor(300, 12)[:, 0].double().numpy()
    want = np.stack([bf16(bf16(m) * bf16(np.arange(300.0))) for m in paper_alibi_slopes(12)])
    check("alibi: HF bias == bf16(bf16(slope) * bf16(key position))", np.array_equal(t, want))
    v = torch.linspace(-6, 6, 101)
    want = 0.5 * v.double().numpy() * (1 + _erf(v.double().numpy() / math.sqrt(2)))
    check("gelu: exact erf form", np.allclose(torch.nn.functional.gelu(v).double().numpy(), want, atol=1e-6))
    a = np.random.default_rng(0).standard_normal(10000).astype(np.float32) * 10
    check("bf16: numpy rounding == torch", np.array_equal(
        bf16(a).astype(np.float32), torch.from_numpy(a).bfloat16().float().numpy()))


def test_presets_vs_numpy(tmp):
    ids = [int(x) for x in np.random.default_rng(5).integers(12, 500, 24)]
    for name in sorted(p for p in P.PRESETS if p.startswith("ref-")):
        d = os.path.join(tmp, name)
        G.generate(name, d, quiet=True)
        ck = Checkpoint(d)
        W = {n: ck.get_f32(n).astype(np.float64) for n in ck.names()}
        want = (np_llama if P.family(ck.config) == "llama" else np_falcon)(ck.config, W, ids)
        model = R.load_model(d)
        got = R.prompt_logits(model, ids).double().numpy()
        err = np.abs(got - want).max()
        check(f"{name}: reference == float64 numpy forward", err < 2e-4, f"max|diff| {err:.1e}")
        pre = R.prompt_logits(model, ids[:10]).double().numpy()
        check(f"{name}: causal (prefix logits unchanged)", np.abs(pre - got[:10]).max() < 1e-5)


def _llama_weights(c, seed):
    g = torch.Generator().manual_seed(seed)
    return {n: torch.randn(*s, generator=g) * (0.3 if k in ("qk", "linear") else 0.1) + (k == "norm")
            for n, s, k in P.tensor_specs(c)}


def test_equivalences():
    base = P.build_config("ref-llama-gqa4-hd64")
    c = dict(base, hidden_size=128, num_attention_heads=4, num_key_value_heads=2, head_dim=32,
             intermediate_size=64, vocab_size=50)
    W = _llama_weights(c, 1)
    ids = torch.randint(0, 50, (1, 17), generator=torch.Generator().manual_seed(2))
    mha = dict(c, num_key_value_heads=4)
    W2 = dict(W)
    for i in range(c["num_hidden_layers"]):
        for proj in ("k", "v"):  # kv head j serves q heads 2j, 2j+1: duplicate its rows
            w = W[f"model.layers.{i}.self_attn.{proj}_proj.weight"].view(2, 32, 128)
            W2[f"model.layers.{i}.self_attn.{proj}_proj.weight"] = w.repeat_interleave(2, 0).reshape(128, 128)
    a = llama_ref.LlamaRef(c, W).logits(ids)
    b = llama_ref.LlamaRef(mha, W2).logits(ids)
    check("llama: GQA == MHA with duplicated kv weights", torch.allclose(a, b, rtol=1e-5, atol=1e-4))

    f = dict(P.build_config("ref-falcon-7b"), hidden_size=128, num_attention_heads=4, vocab_size=50)
    Wf = _llama_weights(f, 3)
    mq = falcon_ref.FalconRef(f, Wf).logits(ids)
    # multi-query [q0..q3, k, v] is the new-architecture layout with one kv group
    f1 = dict(f, new_decoder_architecture=True, num_kv_heads=1, num_ln_in_parallel_attn=1)
    check("falcon: multi-query == new-arch with 1 group, 1 norm",
          torch.allclose(mq, falcon_ref.FalconRef(f1, Wf).logits(ids), atol=1e-5))
    f2 = dict(f1, num_ln_in_parallel_attn=2)
    W2 = dict(Wf)
    for i in range(f["num_hidden_layers"]):
        for ln in ("ln_attn", "ln_mlp"):
            for part in ("weight", "bias"):
                W2[f"transformer.h.{i}.{ln}.{part}"] = Wf[f"transformer.h.{i}.input_layernorm.{part}"]
    check("falcon: two equal norms == one norm",
          torch.allclose(mq, falcon_ref.FalconRef(f2, W2).logits(ids), atol=1e-5))


def test_checkpoint_io(tmp):
    a, b = os.path.join(tmp, "one"), os.path.join(tmp, "sharded")
    G.generate("ref-falcon-rw", a, quiet=True, dtype="bf16")
    G.generate("ref-falcon-rw", b, quiet=True, dtype="bf16", shards=3)
    ca, cb = Checkpoint(a), Checkpoint(b)
    same = sorted(ca.names()) == sorted(cb.names()) and all(
        np.array_equal(ca.raw(n), cb.raw(n)) for n in ca.names())
    check("checkpoint: 3 shards hold the same tensors as 1 file", same)
    f32 = Checkpoint(os.path.join(tmp, "ref-falcon-rw"))
    n = "transformer.h.1.mlp.dense_h_to_4h.weight"
    check("checkpoint: bf16 file == bf16(f32 file)",
          np.array_equal(ca.get_f32(n), bf16(f32.get_f32(n)).astype(np.float32)))
    check("checkpoint: row-range read", np.array_equal(ca.get_f32(n, rows=(5, 9)), ca.get_f32(n)[5:9]))


def main():
    torch.set_num_threads(2)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        test_rope_and_slopes()
        test_equivalences()
        test_presets_vs_numpy(tmp)
        test_checkpoint_io(tmp)
    if FAILED:
        sys.exit(f"selftest: {len(FAILED)} failed: {FAILED}")
    print("selftest: all passed")


if __name__ == "__main__":
    main()
