"""Held-out perplexity, greedy and sampled generation, and the check that the
training modules compute what the references compute.

All of it runs the reference models of tests/reference/ (refmodel.load_model on
a saved checkpoint directory), in float32, except check_against_reference which
compares the training module with them.
"""
import math
import os
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
from falcon_ref import FalconRef  # noqa: E402
from llama_ref import LlamaRef  # noqa: E402

PPL_CONTEXT = 256


def perplexity_chunks(ids, n_ctx=PPL_CONTEXT):
    """The chunking of the perplexity protocol: consecutive, non-overlapping
    chunks of n_ctx tokens; the last, shorter chunk is kept if it has at least
    2 tokens."""
    return [ids[i:i + n_ctx] for i in range(0, len(ids), n_ctx) if len(ids[i:i + n_ctx]) >= 2]


@torch.no_grad()
def perplexity(logits_fn, ids, n_ctx=PPL_CONTEXT, batch=16):
    """Held-out perplexity protocol (cria perplexity implements the same):

    ids: the whole evaluation file tokenized once (special-token text matched as
    special tokens; the tokenizer's BOS, if it adds one, prepended once at the
    very start). Cut into perplexity_chunks(ids, n_ctx). Each chunk is an
    independent sequence starting at position 0; every prediction of token i+1
    from tokens 0..i of the chunk is scored (len(chunk) - 1 per chunk).
    Perplexity = exp(mean NLL over all scored tokens), NLL = -log_softmax(logits)
    in float32, summed in float64.

    logits_fn: LongTensor [b, s] -> float32 [b, s, vocab].
    -> dict(ppl, nll_mean, n_tokens, n_chunks, n_scored)
    """
    chunks = perplexity_chunks(ids, n_ctx)
    full = [c for c in chunks if len(c) == n_ctx]  # only the last chunk can be shorter
    groups = [full[i:i + batch] for i in range(0, len(full), batch)]
    groups += [[c] for c in chunks if len(c) < n_ctx]
    total, count = 0.0, 0
    for group in groups:
        x = torch.tensor(group, dtype=torch.int64)
        logp = F.log_softmax(logits_fn(x)[:, :-1].float(), dim=-1)
        nll = -logp.gather(-1, x[:, 1:, None])[..., 0]
        total += float(nll.double().sum())
        count += nll.numel()
    nll_mean = total / count
    return {"ppl": math.exp(nll_mean), "nll_mean": nll_mean, "n_tokens": len(ids),
            "n_chunks": len(chunks), "n_scored": count}


@torch.no_grad()
def generate(logits_fn, ids, n_new, stop=(), temperature=0.0, top_p=1.0, seed=0):
    """Full recomputation each step (no KV cache). temperature 0 = greedy
    (argmax, lowest id on ties). Sampling: logits / temperature, then top-p
    (smallest set of most likely tokens whose probability reaches top_p),
    torch.multinomial with a generator seeded by `seed`.
    -> (new ids, min top-1 minus top-2 logit margin over the steps)"""
    gen = torch.Generator().manual_seed(seed)
    ids, out, margin = list(ids), [], float("inf")
    for _ in range(n_new):
        logits = logits_fn(torch.tensor([ids], dtype=torch.int64))[0, -1].float()
        top2 = torch.topk(logits, 2).values
        margin = min(margin, float(top2[0] - top2[1]))
        if temperature == 0.0:
            nxt = int(torch.argmax(logits))
        else:
            probs = F.softmax(logits / temperature, dim=-1)
            p_sorted, order = torch.sort(probs, descending=True)
            keep = (torch.cumsum(p_sorted, 0) - p_sorted) < top_p  # always keeps the top token
            p_sorted = torch.where(keep, p_sorted, torch.zeros_like(p_sorted))
            nxt = int(order[torch.multinomial(p_sorted / p_sorted.sum(), 1, generator=gen)])
        out.append(nxt)
        ids.append(nxt)
        if nxt in stop:
            break
    return out, margin


def reference_for(config, state):
    """The tests/reference model for a training module's state_dict."""
    weights = {k: v.detach().float().clone() for k, v in state.items()}
    arch = config["architectures"][0]
    return LlamaRef(config, weights) if arch == "LlamaForCausalLM" else FalconRef(config, weights)


@torch.no_grad()
def check_against_reference(model, config, seed=1, seq=96, batch=2, tol=1e-4):
    """Training module vs reference on random ids, with weights perturbed away
    from the initialisation (non-unit norms, LayerNorm biases, sharp attention)
    so that a wrong RoPE, head grouping or norm cannot hide. Returns max |diff|."""
    g = torch.Generator().manual_seed(seed)
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    for name, p in model.named_parameters():
        if p.dim() == 1:
            p.add_(0.2 * torch.randn(p.shape, generator=g))
        elif "q_proj" in name or "k_proj" in name or "query_key_value" in name:
            p.mul_(8.0)
    ids = torch.randint(0, config["vocab_size"], (batch, seq), generator=g)
    was_training = model.training
    model.eval()
    ours = model(ids)
    ref = reference_for(config, model.state_dict()).logits(ids)
    diff = float((ours - ref).abs().max())
    model.load_state_dict(saved)
    model.train(was_training)
    if not diff < tol:
        raise AssertionError(f"training model differs from the reference: max |logit diff| {diff:.3g}")
    return diff
