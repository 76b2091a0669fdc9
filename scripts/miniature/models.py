"""Trainable Llama and Falcon modules whose parameter names are the Hugging Face
checkpoint names, so `state_dict()` is the checkpoint.

The forward passes compute what tests/reference/llama_ref.py and falcon_ref.py
(line-by-line mirrors of HF modeling_llama.py / modeling_falcon.py) compute;
check_against_reference() in scripts/train_miniature.py verifies that on
random inputs. Only the configurations the miniatures use are supported:
Llama without biases or rope scaling; Falcon with rotary, multi-query,
parallel attention, one LayerNorm per block, no biases.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def rope_cos_sin(head_dim, theta, seq_len):
    """HF default rope: inv_freq over even indices, [cos|cos] halves (rotate_half layout)."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))
    freqs = torch.arange(seq_len, dtype=torch.float32)[:, None] * inv_freq[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()  # [s, head_dim]


def apply_rope(x, cos, sin):
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


def causal_attention(q, k, v):
    """q [b, h, s, d], k/v [b, kv, s, d] with h a multiple of kv; head i uses kv head i // (h/kv)."""
    b, h, s, d = q.shape
    kv = k.shape[1]
    if kv != h:  # repeat_kv
        k = k[:, :, None].expand(b, kv, h // kv, s, d).reshape(b, h, s, d)
        v = v[:, :, None].expand(b, kv, h // kv, s, d).reshape(b, h, s, d)
    scores = torch.matmul(q, k.transpose(2, 3)) * (d ** -0.5)
    mask = torch.full((s, s), torch.finfo(scores.dtype).min, dtype=scores.dtype).triu(1)
    probs = F.softmax(scores + mask, dim=-1, dtype=torch.float32)
    return torch.matmul(probs, v)


class RMSNorm(nn.Module):
    def __init__(self, n, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.eps = eps

    def forward(self, x):
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


def _linear(n_in, n_out):
    return nn.Linear(n_in, n_out, bias=False)


class LlamaAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.heads, self.kv, self.hd = c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"]
        h = c["hidden_size"]
        self.q_proj = _linear(h, self.heads * self.hd)
        self.k_proj = _linear(h, self.kv * self.hd)
        self.v_proj = _linear(h, self.kv * self.hd)
        self.o_proj = _linear(self.heads * self.hd, h)

    def forward(self, x, cos, sin):
        b, s, _ = x.shape
        q = self.q_proj(x).view(b, s, self.heads, self.hd).transpose(1, 2)
        k = self.k_proj(x).view(b, s, self.kv, self.hd).transpose(1, 2)
        v = self.v_proj(x).view(b, s, self.kv, self.hd).transpose(1, 2)
        out = causal_attention(apply_rope(q, cos, sin), apply_rope(k, cos, sin), v)
        return self.o_proj(out.transpose(1, 2).reshape(b, s, -1))


class LlamaMLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        h, inter = c["hidden_size"], c["intermediate_size"]
        self.gate_proj, self.up_proj, self.down_proj = _linear(h, inter), _linear(h, inter), _linear(inter, h)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class LlamaLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.self_attn, self.mlp = LlamaAttention(c), LlamaMLP(c)
        self.input_layernorm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])
        self.post_attention_layernorm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])

    def forward(self, x, cos, sin):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin)
        return x + self.mlp(self.post_attention_layernorm(x))


class LlamaBody(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embed_tokens = nn.Embedding(c["vocab_size"], c["hidden_size"])
        self.layers = nn.ModuleList(LlamaLayer(c) for _ in range(c["num_hidden_layers"]))
        self.norm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])


class LlamaLM(nn.Module):
    """LlamaForCausalLM with tied embeddings (no lm_head.weight in the checkpoint)."""

    def __init__(self, c):
        super().__init__()
        assert c["tie_word_embeddings"] and not c.get("attention_bias") and not c.get("mlp_bias")
        assert c.get("rope_scaling") is None and c["hidden_act"] == "silu"
        self.config = c
        self.model = LlamaBody(c)

    def forward(self, ids):
        c = self.config
        cos, sin = rope_cos_sin(c["head_dim"], c["rope_theta"], ids.shape[1])
        h = self.model.embed_tokens(ids)
        for layer in self.model.layers:
            h = layer(h, cos, sin)
        return F.linear(self.model.norm(h), self.model.embed_tokens.weight)


class FalconAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        h = c["hidden_size"]
        self.heads = c["num_attention_heads"]
        self.hd = h // self.heads
        self.theta = c.get("rope_theta", 10000.0)
        self.query_key_value = _linear(h, (self.heads + 2) * self.hd)  # [all q, k, v]
        self.dense = _linear(h, h)

    def forward(self, x, cos, sin):
        b, s, _ = x.shape
        qkv = self.query_key_value(x).view(b, s, self.heads + 2, self.hd).transpose(1, 2)
        q, k, v = qkv[:, :-2], qkv[:, -2:-1], qkv[:, -1:]
        out = causal_attention(apply_rope(q, cos, sin), apply_rope(k, cos, sin), v)
        return self.dense(out.transpose(1, 2).reshape(b, s, -1))


class FalconMLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        h = c["hidden_size"]
        ffn = c.get("ffn_hidden_size") or 4 * h
        self.dense_h_to_4h, self.dense_4h_to_h = _linear(h, ffn), _linear(ffn, h)

    def forward(self, x):
        return self.dense_4h_to_h(F.gelu(self.dense_h_to_4h(x)))


class FalconLayer(nn.Module):
    """Parallel attention and MLP sharing one LayerNorm (Falcon-7B's block)."""

    def __init__(self, c):
        super().__init__()
        self.input_layernorm = nn.LayerNorm(c["hidden_size"], eps=c["layer_norm_epsilon"])
        self.self_attention, self.mlp = FalconAttention(c), FalconMLP(c)

    def forward(self, x, cos, sin):
        ln = self.input_layernorm(x)
        return x + (self.mlp(ln) + self.self_attention(ln, cos, sin))


class FalconBody(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.word_embeddings = nn.Embedding(c["vocab_size"], c["hidden_size"])
        self.h = nn.ModuleList(FalconLayer(c) for _ in range(c["num_hidden_layers"]))
        self.ln_f = nn.LayerNorm(c["hidden_size"], eps=c["layer_norm_epsilon"])


class FalconLM(nn.Module):
    """FalconForCausalLM, tied embeddings (no lm_head.weight, as Falcon-7B)."""

    def __init__(self, c):
        super().__init__()
        assert c["parallel_attn"] and c["multi_query"] and not c["new_decoder_architecture"]
        assert not c["alibi"] and not c["bias"] and c.get("tie_word_embeddings", True)
        self.config = c
        self.transformer = FalconBody(c)

    def forward(self, ids):
        c = self.config
        hd = c["hidden_size"] // c["num_attention_heads"]
        cos, sin = rope_cos_sin(hd, c.get("rope_theta", 10000.0), ids.shape[1])
        h = self.transformer.word_embeddings(ids)
        for layer in self.transformer.h:
            h = layer(h, cos, sin)
        return F.linear(self.transformer.ln_f(h), self.transformer.word_embeddings.weight)


def build(config):
    arch = config["architectures"][0]
    return LlamaLM(config) if arch == "LlamaForCausalLM" else FalconLM(config)


def init_weights(model, std=0.02):
    """GPT-2 style: N(0, std) linears and embeddings, residual projections
    scaled by 1/sqrt(2 * layers); norms at 1 (and 0 bias)."""
    layers = model.config["num_hidden_layers"]
    for name, p in model.named_parameters():
        if p.dim() == 1:
            continue  # norm weights/biases keep their constructor values
        s = std / math.sqrt(2 * layers) if name.endswith(("o_proj.weight", "down_proj.weight",
                                                          "dense.weight", "dense_4h_to_h.weight")) else std
        nn.init.normal_(p, 0.0, s)
