"""Loads a Hugging Face checkpoint directory into the matching reference model
and runs greedy decoding by full recomputation (no KV cache: simple and
obviously correct)."""
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
sys.path.insert(0, HERE)

from falcon_ref import FalconRef  # noqa: E402
from llama_ref import LlamaRef  # noqa: E402
from pylib.hf_checkpoint import Checkpoint  # noqa: E402


def load_weights(ckpt):
    return {n: torch.from_numpy(ckpt.get_f32(n).copy()) for n in ckpt.names()}


def load_model(path):
    """-> LlamaRef | FalconRef for the checkpoint directory at path."""
    ckpt = Checkpoint(path)
    arch = ckpt.config["architectures"][0]
    weights = load_weights(ckpt)
    if arch == "LlamaForCausalLM":
        return LlamaRef(ckpt.config, weights)
    if arch in ("FalconForCausalLM", "RWForCausalLM"):
        return FalconRef(ckpt.config, weights)
    raise ValueError(f"unsupported architecture {arch}")


def prompt_logits(model, ids):
    """ids: list[int] -> float32 tensor [len(ids), vocab]."""
    return model.logits(torch.tensor([ids], dtype=torch.int64))[0]


def greedy(model, ids, n_new):
    """Greedy continuation; ties go to the lowest id (torch.argmax)."""
    ids = list(ids)
    out = []
    for _ in range(n_new):
        nxt = int(torch.argmax(prompt_logits(model, ids)[-1]))
        out.append(nxt)
        ids.append(nxt)
    return out
