"""From-scratch PyTorch Falcon (falcon-rw-1b, 7B, 40B, Falcon2-11B) mirroring
Hugging Face transformers' models/falcon/modeling_falcon.py (v4.4x-4.5x) and,
for ALiBi, the published RW modelling code. Float32 throughout.
"""
import math

import torch
import torch.nn.functional as F

from llama_ref import apply_rotary_pos_emb, causal_mask, rotary_cos_sin


class FalconConfig:
    """configuration_falcon.FalconConfig defaults, plus the legacy RW key names."""

    def __init__(self, c):
        self.vocab_size = c["vocab_size"]
        self.hidden_size = c.get("hidden_size", c.get("n_embed"))  # FalconConfig pops n_embed
        self.num_layers = c.get("num_hidden_layers", c.get("n_layer"))
        self.num_heads = c.get("num_attention_heads", c.get("n_head"))
        # Legacy RW configs give n_head_kv; HF's conversion script turns that into
        # num_kv_heads + new_decoder_architecture=True (convert_custom_code_checkpoint.py).
        legacy_kv = c.get("n_head_kv")
        self.new_decoder_architecture = c.get("new_decoder_architecture", legacy_kv is not None)
        kv = c.get("num_kv_heads", legacy_kv)
        self.num_kv_heads = self.num_heads if kv is None else kv
        self.multi_query = c.get("multi_query", True)
        self.parallel_attn = c.get("parallel_attn", True)
        self.bias = c.get("bias", False)
        self.alibi = c.get("alibi", False)
        self.layer_norm_epsilon = c.get("layer_norm_epsilon", 1e-5)
        self.rope_theta = c.get("rope_theta", 10000.0)
        self.rope_scaling = c.get("rope_scaling")
        self.max_position_embeddings = c.get("max_position_embeddings", 2048)
        self.ffn_hidden_size = c.get("ffn_hidden_size") or self.hidden_size * 4
        self.num_ln_in_parallel_attn = c.get("num_ln_in_parallel_attn")
        if self.num_ln_in_parallel_attn is None and self.new_decoder_architecture:
            self.num_ln_in_parallel_attn = 2  # FalconDecoderLayer.__init__
        self.tie_word_embeddings = c.get("tie_word_embeddings", True)  # PretrainedConfig default
        self.head_dim = self.hidden_size // self.num_heads  # FalconConfig.head_dim
        if c.get("activation", "gelu") != "gelu":
            raise ValueError(f"activation {c['activation']} not supported")
        if self.rope_scaling is not None:
            raise ValueError("Falcon rope_scaling is not supported by this reference")
        if c.get("apply_residual_connection_post_layernorm", False):
            raise ValueError("apply_residual_connection_post_layernorm is not supported")


def alibi_slopes(num_heads):
    """build_alibi_tensor's slopes, float32 (before its bfloat16 cast)."""
    closest_power_of_2 = 2 ** math.floor(math.log2(num_heads))
    base = torch.tensor(2 ** (-(2 ** -(math.log2(closest_power_of_2) - 3))), dtype=torch.float32)
    powers = torch.arange(1, 1 + closest_power_of_2, dtype=torch.int32)
    slopes = torch.pow(base, powers)
    if closest_power_of_2 != num_heads:
        extra_base = torch.tensor(2 ** (-(2 ** -(math.log2(2 * closest_power_of_2) - 3))),
                                  dtype=torch.float32)
        num_remaining_heads = min(closest_power_of_2, num_heads - closest_power_of_2)
        extra_powers = torch.arange(1, 1 + 2 * num_remaining_heads, 2, dtype=torch.int32)
        slopes = torch.cat([slopes, torch.pow(extra_base, extra_powers)], dim=0)
    return slopes


def build_alibi_tensor(seq_len, num_heads):
    """build_alibi_tensor for batch 1, no padding -> [num_heads, 1, seq_len] float32.
    HF multiplies bfloat16 slopes by the int64 key positions; type promotion
    turns the positions into bfloat16 too (exact only up to 256), so
    bias = bf16(bf16(slope) * bf16(key_position)), key_position from 0."""
    attention_mask = torch.ones((1, seq_len), dtype=torch.long)
    arange_tensor = ((attention_mask.cumsum(dim=-1) - 1) * attention_mask)[:, None, :]
    alibi = alibi_slopes(num_heads)[..., None].bfloat16() * arange_tensor
    return alibi.reshape(num_heads, 1, seq_len).to(torch.float32)


class FalconRef:
    def __init__(self, config, weights):
        self.cfg = FalconConfig(config)
        self.w = weights
        if "lm_head.weight" in weights and not self.cfg.tie_word_embeddings:
            self.lm_head = weights["lm_head.weight"]
        elif self.cfg.tie_word_embeddings:
            self.lm_head = weights["transformer.word_embeddings.weight"]
        else:
            raise ValueError("lm_head.weight missing and tie_word_embeddings is false")
        c = self.cfg
        # FalconAttention.num_kv_heads: multi-query (old arch) has one kv head
        self.attn_kv_heads = c.num_kv_heads if (c.new_decoder_architecture or not c.multi_query) else 1
        if not c.alibi:
            # FalconRotaryEmbedding is LlamaRotaryEmbedding with rope_theta, default rope
            dim = c.head_dim
            self.inv_freq = 1.0 / (c.rope_theta ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))

    def _linear(self, x, name):
        # FalconLinear: matmul, then a separate bias add (never fused)
        h = x @ self.w[name + ".weight"].T
        b = self.w.get(name + ".bias")
        return h if b is None else h + b

    def _layer_norm(self, x, name):
        return F.layer_norm(x, (x.shape[-1],), self.w[name + ".weight"], self.w[name + ".bias"],
                            self.cfg.layer_norm_epsilon)

    def _split_heads(self, fused_qkv):
        # FalconAttention._split_heads -> q, k, v each [b, s, heads_or_kv, head_dim]
        c, hd = self.cfg, self.cfg.head_dim
        b, s, _ = fused_qkv.shape
        if c.new_decoder_architecture:  # per kv group: [q x (heads/kv), k, v]
            qkv = fused_qkv.view(b, s, -1, c.num_heads // self.attn_kv_heads + 2, hd)
            query = qkv[:, :, :, :-2]
            key = torch.broadcast_to(qkv[:, :, :, [-2]], query.shape)
            value = torch.broadcast_to(qkv[:, :, :, [-1]], query.shape)
            return [x.flatten(2, 3) for x in (query, key, value)]
        if not c.multi_query:  # classic MHA: per head [q, k, v]
            qkv = fused_qkv.view(b, s, c.num_heads, 3, hd)
            return qkv[..., 0, :], qkv[..., 1, :], qkv[..., 2, :]
        qkv = fused_qkv.view(b, s, c.num_heads + 2, hd)  # multi-query: [all q, k, v]
        return qkv[..., :-2, :], qkv[..., [-2], :], qkv[..., [-1], :]

    def _attention(self, i, x, cos, sin, alibi, mask):
        # FalconAttention.forward
        c, p = self.cfg, f"transformer.h.{i}.self_attention."
        fused_qkv = self._linear(x, p + "query_key_value")
        num_kv_heads = c.num_heads if c.new_decoder_architecture else self.attn_kv_heads
        q, k, v = self._split_heads(fused_qkv)
        b, s, _, _ = q.shape
        q = q.transpose(1, 2).reshape(b, c.num_heads, s, c.head_dim)
        k = k.transpose(1, 2).reshape(b, num_kv_heads, s, c.head_dim)
        v = v.transpose(1, 2).reshape(b, num_kv_heads, s, c.head_dim)
        if alibi is None:
            q, k = apply_rotary_pos_emb(q, k, cos, sin)
            scores = q @ k.transpose(-1, -2)  # kv heads broadcast over q heads (MQA)
            scores = scores / math.sqrt(c.head_dim)
            probs = F.softmax(scores + mask, dim=-1, dtype=torch.float32)
            out = (probs @ v).view(b, c.num_heads, s, c.head_dim).permute(0, 2, 1, 3)
        else:
            # ALiBi branch: the bias is added BEFORE scaling by inv_norm_factor, so it
            # is effectively divided by sqrt(head_dim) (RW modelling / SDPA path; the
            # mask holds only the causal part here).
            scores = (q @ k.transpose(-1, -2)).view(b, c.num_heads, s, s)
            logits = (scores + alibi.view(b, c.num_heads, 1, -1)) * (1.0 / math.sqrt(c.head_dim))
            probs = F.softmax(logits + mask, dim=-1, dtype=torch.float32)
            out = (probs @ v).permute(0, 2, 1, 3)
        return self._linear(out.reshape(b, s, c.num_heads * c.head_dim), p + "dense")

    def _mlp(self, i, x):
        # FalconMLP: dense_4h_to_h(gelu(dense_h_to_4h(x))), exact erf GELU
        p = f"transformer.h.{i}.mlp."
        return self._linear(F.gelu(self._linear(x, p + "dense_h_to_4h")), p + "dense_4h_to_h")

    def _decoder_layer(self, i, h, cos, sin, alibi, mask):
        # FalconDecoderLayer.forward (dropout is identity at inference)
        c, p = self.cfg, f"transformer.h.{i}."
        residual = h
        if c.new_decoder_architecture and c.num_ln_in_parallel_attn == 2:
            attention_ln = self._layer_norm(h, p + "ln_attn")
            mlp_ln = self._layer_norm(h, p + "ln_mlp")
        else:
            attention_ln = self._layer_norm(h, p + "input_layernorm")
        attention_output = self._attention(i, attention_ln, cos, sin, alibi, mask)
        if not c.new_decoder_architecture:
            if c.parallel_attn:
                mlp_ln = attention_ln
            else:  # sequential (falcon-rw): attention residual first, then a second norm
                residual = attention_output + residual
                mlp_ln = self._layer_norm(residual, p + "post_attention_layernorm")
        if c.new_decoder_architecture and c.parallel_attn and c.num_ln_in_parallel_attn == 1:
            mlp_ln = attention_ln
        mlp_output = self._mlp(i, mlp_ln)
        if c.new_decoder_architecture or c.parallel_attn:
            mlp_output = mlp_output + attention_output
        return mlp_output + residual

    @torch.no_grad()
    def logits(self, input_ids):
        """input_ids [b, s] (int64) -> float32 logits [b, s, vocab]."""
        c = self.cfg
        b, s = input_ids.shape
        h = F.embedding(input_ids, self.w["transformer.word_embeddings.weight"])
        cos = sin = alibi = None
        if c.alibi:
            alibi = build_alibi_tensor(s, c.num_heads).expand(c.num_heads, 1, s)
            alibi = alibi.repeat(b, 1, 1)
        else:
            position_ids = torch.arange(s)[None].expand(b, s)
            cos, sin = rotary_cos_sin(self.inv_freq, 1.0, position_ids)
        mask = causal_mask(s)
        for i in range(c.num_layers):
            h = self._decoder_layer(i, h, cos, sin, alibi, mask)
        h = self._layer_norm(h, "transformer.ln_f")
        return F.linear(h, self.lm_head)  # lm_head has no bias
