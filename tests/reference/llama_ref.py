"""From-scratch PyTorch Llama (3.0/3.1/3.2) mirroring Hugging Face transformers'
models/llama/modeling_llama.py and modeling_rope_utils.py (v4.4x-4.5x, eager
attention path). Float32 throughout; each piece names the HF code it mirrors.
"""
import math

import torch
import torch.nn.functional as F


class LlamaConfig:
    """The LlamaConfig fields the forward pass reads, with LlamaConfig's defaults."""

    def __init__(self, c):
        self.vocab_size = c["vocab_size"]
        self.hidden_size = c["hidden_size"]
        self.num_layers = c["num_hidden_layers"]
        self.num_heads = c["num_attention_heads"]
        self.num_kv_heads = c.get("num_key_value_heads") or self.num_heads
        # LlamaConfig: head_dim = head_dim if given else hidden_size // num_attention_heads
        self.head_dim = c.get("head_dim") or self.hidden_size // self.num_heads
        self.intermediate_size = c["intermediate_size"]
        self.rms_norm_eps = c.get("rms_norm_eps", 1e-6)
        self.rope_theta = c.get("rope_theta", 10000.0)
        self.rope_scaling = c.get("rope_scaling")
        self.max_position_embeddings = c.get("max_position_embeddings", 2048)
        self.tie_word_embeddings = c.get("tie_word_embeddings", False)
        self.attention_bias = c.get("attention_bias", False)
        self.mlp_bias = c.get("mlp_bias", False)
        if c.get("hidden_act", "silu") != "silu":
            raise ValueError(f"hidden_act {c['hidden_act']} not supported")


def rope_inv_freq(cfg):
    """-> (inv_freq float32 [head_dim/2], attention_scaling)."""
    # _compute_default_rope_parameters
    base, dim = cfg.rope_theta, cfg.head_dim
    inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))
    rs = cfg.rope_scaling
    rope_type = None if rs is None else rs.get("rope_type", rs.get("type"))
    if rope_type in (None, "default"):
        return inv_freq, 1.0
    if rope_type != "llama3":
        raise ValueError(f"rope_type {rope_type} not supported")
    # _compute_llama3_parameters
    factor = rs["factor"]
    low_freq_factor = rs["low_freq_factor"]
    high_freq_factor = rs["high_freq_factor"]
    old_context_len = rs.get("original_max_position_embeddings", cfg.max_position_embeddings)
    low_freq_wavelen = old_context_len / low_freq_factor
    high_freq_wavelen = old_context_len / high_freq_factor
    wavelen = 2 * math.pi / inv_freq
    inv_freq_llama = torch.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
    smooth_factor = (old_context_len / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
    smoothed_inv_freq = (1 - smooth_factor) * inv_freq_llama / factor + smooth_factor * inv_freq_llama
    is_medium_freq = ~(wavelen < high_freq_wavelen) * ~(wavelen > low_freq_wavelen)
    inv_freq_llama = torch.where(is_medium_freq, smoothed_inv_freq, inv_freq_llama)
    return inv_freq_llama, 1.0


def rotary_cos_sin(inv_freq, attention_scaling, position_ids):
    # LlamaRotaryEmbedding.forward: position_ids [b, s] -> cos, sin [b, s, head_dim]
    inv_freq_expanded = inv_freq[None, :, None].float().expand(position_ids.shape[0], -1, 1)
    position_ids_expanded = position_ids[:, None, :].float()
    freqs = (inv_freq_expanded @ position_ids_expanded).transpose(1, 2)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos() * attention_scaling, emb.sin() * attention_scaling


def rotate_half(x):
    # rotate_half: pairs element i with i + head_dim/2 (not adjacent elements)
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary_pos_emb(q, k, cos, sin, unsqueeze_dim=1):
    # apply_rotary_pos_emb
    cos = cos.unsqueeze(unsqueeze_dim)
    sin = sin.unsqueeze(unsqueeze_dim)
    return (q * cos) + (rotate_half(q) * sin), (k * cos) + (rotate_half(k) * sin)


def repeat_kv(hidden_states, n_rep):
    # repeat_kv: [b, kv, s, d] -> [b, kv * n_rep, s, d]; q head h uses kv head h // n_rep
    b, kv, s, d = hidden_states.shape
    if n_rep == 1:
        return hidden_states
    hidden_states = hidden_states[:, :, None, :, :].expand(b, kv, n_rep, s, d)
    return hidden_states.reshape(b, kv * n_rep, s, d)


def rms_norm(x, weight, eps):
    # LlamaRMSNorm.forward: statistics in float32, then cast back, then scale
    input_dtype = x.dtype
    h = x.to(torch.float32)
    variance = h.pow(2).mean(-1, keepdim=True)
    h = h * torch.rsqrt(variance + eps)
    return weight * h.to(input_dtype)


def causal_mask(seq_len, dtype=torch.float32):
    # _prepare_4d_causal_attention_mask_with_cache_position (no cache, no padding)
    m = torch.full((seq_len, seq_len), torch.finfo(dtype).min, dtype=dtype)
    return torch.triu(m, diagonal=1)[None, None]


class LlamaRef:
    def __init__(self, config, weights):
        """config: config.json dict; weights: {HF tensor name: float32 tensor}."""
        self.cfg = LlamaConfig(config)
        self.w = weights
        if self.cfg.tie_word_embeddings or "lm_head.weight" not in weights:
            if not self.cfg.tie_word_embeddings:
                raise ValueError("lm_head.weight missing and tie_word_embeddings is false")
            self.lm_head = weights["model.embed_tokens.weight"]  # tied (LlamaForCausalLM)
        else:
            self.lm_head = weights["lm_head.weight"]
        self.inv_freq, self.attention_scaling = rope_inv_freq(self.cfg)

    def _linear(self, x, name):
        return F.linear(x, self.w[name + ".weight"], self.w.get(name + ".bias"))

    def _attention(self, i, x, cos, sin, mask):
        # LlamaAttention.forward + eager_attention_forward
        c, p = self.cfg, f"model.layers.{i}.self_attn."
        b, s, _ = x.shape
        hidden_shape = (b, s, -1, c.head_dim)
        q = self._linear(x, p + "q_proj").view(hidden_shape).transpose(1, 2)
        k = self._linear(x, p + "k_proj").view(hidden_shape).transpose(1, 2)
        v = self._linear(x, p + "v_proj").view(hidden_shape).transpose(1, 2)
        q, k = apply_rotary_pos_emb(q, k, cos, sin)
        n_rep = c.num_heads // c.num_kv_heads
        k, v = repeat_kv(k, n_rep), repeat_kv(v, n_rep)
        scaling = c.head_dim ** -0.5
        attn_weights = torch.matmul(q, k.transpose(2, 3)) * scaling + mask
        attn_weights = F.softmax(attn_weights, dim=-1, dtype=torch.float32).to(q.dtype)
        out = torch.matmul(attn_weights, v).transpose(1, 2).contiguous().reshape(b, s, -1)
        return self._linear(out, p + "o_proj")

    def _mlp(self, i, x):
        # LlamaMLP: down_proj(silu(gate_proj(x)) * up_proj(x))
        p = f"model.layers.{i}.mlp."
        return self._linear(F.silu(self._linear(x, p + "gate_proj")) * self._linear(x, p + "up_proj"),
                            p + "down_proj")

    @torch.no_grad()
    def logits(self, input_ids):
        """input_ids [b, s] (int64) -> float32 logits [b, s, vocab]."""
        c = self.cfg
        b, s = input_ids.shape
        h = F.embedding(input_ids, self.w["model.embed_tokens.weight"])
        position_ids = torch.arange(s)[None].expand(b, s)
        cos, sin = rotary_cos_sin(self.inv_freq, self.attention_scaling, position_ids)
        mask = causal_mask(s)
        for i in range(c.num_layers):  # LlamaDecoderLayer.forward
            p = f"model.layers.{i}."
            residual = h
            h = rms_norm(h, self.w[p + "input_layernorm.weight"], c.rms_norm_eps)
            h = residual + self._attention(i, h, cos, sin, mask)
            residual = h
            h = rms_norm(h, self.w[p + "post_attention_layernorm.weight"], c.rms_norm_eps)
            h = residual + self._mlp(i, h)
        h = rms_norm(h, self.w["model.norm.weight"], c.rms_norm_eps)
        return F.linear(h, self.lm_head)
