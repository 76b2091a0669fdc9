#!/usr/bin/python3
"""Trains the miniature Llama 3 and Falcon models of examples/models/.

    /usr/bin/python3 scripts/train_miniature.py --model llama-mini   # ~22 min on 2 idle cores
    /usr/bin/python3 scripts/train_miniature.py --model falcon-mini
        [--seed 0] [--steps 2400] [--batch 8] [--lr 2e-3] [--out DIR] [--build build/miniature]
        [--threads 2]
        [--corpus-only] [--eval-only]

One run: builds the corpus from Debian's `fortunes` (build/miniature/<model>/:
train.txt = epoch 0's training text, heldout.txt = the 5% held-out split),
trains a byte-level BPE on the training split (scripts/bpe_train.py), checks
the training module against tests/reference/ on random inputs, trains, writes
the Hugging Face directory to --out (default examples/models/<model>/), then
reloads it with the reference model and writes report.json / report.md
(held-out perplexity, sample outputs) next to the corpus. --corpus-only stops
after the corpus (what the C++ perplexity test needs); --eval-only redoes the
report from an existing --out.

Determinism: torch.manual_seed, numpy Generators seeded from (seed, epoch),
a fixed data order and torch.use_deterministic_algorithms(True). The same
seed, thread count, torch build and CPU reproduce the weights bit for bit;
another thread count or BLAS/CPU changes float rounding in matmuls and
reductions, so weights then differ in the last bits and the difference grows
over training (same recipe, slightly different model).
"""
import argparse
import json
import os
import sys
import time

# Before torch loads libgomp: idle OpenMP workers sleep instead of spinning.
# With spinning workers a concurrent compile on this 2-core machine made a
# training step 4x slower; the setting never changes results.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
import bpe_train  # noqa: E402
import refmodel  # noqa: E402
from miniature import corpus, evaluate, hfdir, models  # noqa: E402

MAX_DIR_BYTES = 15_000_000

PRESETS = {
    # 3.54M parameters each (float32: 14.2 MB); 4 layers, hidden 256, 4 heads of 64.
    "llama-mini": {"kind": "llama", "style": "llama3", "vocab": 3072, "hidden": 256, "layers": 4,
                   "heads": 4, "kv_heads": 2, "head_dim": 64, "ffn": 640, "context": 256},
    "falcon-mini": {"kind": "falcon", "style": "falcon", "vocab": 3072, "hidden": 256, "layers": 4,
                    "heads": 4, "kv_heads": 1, "head_dim": 64, "ffn": 1024, "context": 256},
}
TRAIN = {"batch": 8, "steps": 2400, "lr": 2e-3, "min_lr_ratio": 0.1, "warmup": 100,
         "weight_decay": 0.1, "betas": (0.9, 0.95), "grad_clip": 1.0, "eval_every": 100,
         "eval_chunks": 32}

SAMPLE_PROMPTS = {
    "llama": ["Tell me a fortune about computers.", "Give me a quote about love.",
              "Tell me a fortune.", "Share something about science."],
    "falcon": ["The best way to", "A computer is", "Love is", "There are two kinds of people"],
}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# --- corpus and tokenizer --------------------------------------------------------

def documents(kind, train, seed, epoch):
    """Epoch `epoch`'s training documents as text, in file order (shuffled later).
    Llama conversations draw their request/system message per epoch."""
    if kind == "llama":
        rng = np.random.default_rng([seed, epoch, 1])
        return corpus.llama_documents(train, rng.random((len(train), 5)))
    return corpus.falcon_documents(train)


def build_corpus(kind, work, seed):
    train, held = corpus.split(corpus.load_fortunes())
    os.makedirs(work, exist_ok=True)
    with open(os.path.join(work, "heldout.txt"), "w", encoding="utf-8") as f:
        f.write(corpus.heldout_text(kind, held))
    docs = documents(kind, train, seed, 0)
    sep = "" if kind == "llama" else "<|endoftext|>"
    with open(os.path.join(work, "train.txt"), "w", encoding="utf-8") as f:
        f.write("".join(d + sep for d in docs))
    log(f"corpus: {len(train)} training / {len(held)} held-out fortunes -> {work}")
    return train, held


def train_tokenizer(preset, train, seed):
    """BPE on the training split. Llama: epoch 0's conversations with the
    special-token text cut out (the requests and role names get merges too)."""
    if preset["kind"] == "llama":
        specials = bpe_train.DEFAULT_SPECIALS["llama3"]
        cut = bpe_train.regex.compile("|".join(bpe_train.regex.escape(s) for s in specials))
        texts = [p for d in documents("llama", train, seed, 0) for p in cut.split(d) if p]
    else:
        texts = corpus.falcon_documents(train)
    tok = bpe_train.train(texts, preset["vocab"], preset["style"])
    assert bpe_train.vocab_len(tok) == preset["vocab"], "corpus ran out of merges"
    return tok


# --- data -------------------------------------------------------------------------

class Batches:
    """Endless [batch, context + 1] int64 batches. Per epoch: documents drawn
    (Llama) and shuffled with numpy Generator(seed, epoch), tokenized,
    concatenated (Falcon puts <|endoftext|> after each), cut into
    non-overlapping context+1 windows from a random offset; windows in stream
    order, the last partial batch dropped."""

    def __init__(self, kind, train, tokenizer, seed, context, batch):
        self.kind, self.train, self.tk, self.seed = kind, train, tokenizer, seed
        self.window, self.batch = context + 1, batch
        self.eot = tokenizer.specials.get("<|endoftext|>")
        self.epoch, self.tokens_per_epoch = 0, []

    def epoch_tensor(self, epoch):
        docs = documents(self.kind, self.train, self.seed, epoch)
        rng = np.random.default_rng([self.seed, epoch, 2])
        stream = []
        for i in rng.permutation(len(docs)):
            stream.extend(self.tk.encode(docs[i]))
            if self.kind == "falcon":
                stream.append(self.eot)
        offset = int(rng.integers(0, self.window))
        n = (len(stream) - offset) // self.window // self.batch * self.batch
        self.tokens_per_epoch.append(len(stream))
        x = torch.tensor(stream[offset:offset + n * self.window], dtype=torch.int64)
        return x.view(n // self.batch, self.batch, self.window)

    def __iter__(self):
        while True:
            for b in self.epoch_tensor(self.epoch):
                yield self.epoch, b
            self.epoch += 1


# --- training -----------------------------------------------------------------------

def lr_at(step, cfg):
    """Linear warm-up, then cosine from lr down to lr * min_lr_ratio at the last step."""
    if step < cfg["warmup"]:
        return cfg["lr"] * (step + 1) / cfg["warmup"]
    t = (step - cfg["warmup"]) / max(1, cfg["steps"] - 1 - cfg["warmup"])
    lo = cfg["lr"] * cfg["min_lr_ratio"]
    return lo + 0.5 * (cfg["lr"] - lo) * (1 + np.cos(np.pi * min(1.0, t)))


def lm_loss(model, batch):
    logits = model(batch[:, :-1])
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))


def train_model(model, batches, eval_ids, cfg, log_path):
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg["weight_decay"]},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=cfg["lr"], betas=cfg["betas"], eps=1e-8)
    eval_x = torch.tensor(evaluate.perplexity_chunks(eval_ids)[:cfg["eval_chunks"]], dtype=torch.int64)
    history, recent, t0 = [], [], time.time()
    it = iter(batches)
    with open(log_path, "w", encoding="utf-8") as logf:
        for step in range(cfg["steps"]):
            epoch, batch = next(it)
            for g in opt.param_groups:
                g["lr"] = lr_at(step, cfg)
            loss = lm_loss(model, batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg["grad_clip"])
            opt.step()
            recent.append(float(loss))
            last = step == cfg["steps"] - 1
            if (step + 1) % cfg["eval_every"] == 0 or last:
                model.eval()
                with torch.no_grad():
                    held = float(lm_loss(model, eval_x))
                model.train()
                rec = {"step": step + 1, "epoch": epoch, "train_loss": float(np.mean(recent)),
                       "heldout_loss_subset": held, "lr": lr_at(step, cfg),
                       "elapsed_s": round(time.time() - t0, 1),
                       "load_avg_1min": round(os.getloadavg()[0], 2)}
                history.append(rec)
                logf.write(json.dumps(rec) + "\n")
                logf.flush()
                tok_s = (step + 1) * batch.numel() / (time.time() - t0)
                log(f"step {step + 1:5d}  epoch {epoch}  train {rec['train_loss']:.4f}  "
                    f"held-out(subset) {held:.4f}  lr {rec['lr']:.2e}  {tok_s:.0f} tok/s  "
                    f"{rec['elapsed_s']:.0f} s")
                recent = []
    return history, time.time() - t0


# --- evaluation ----------------------------------------------------------------------

def sample_outputs(kind, ref, tk, stop, seed):
    rows = []
    for prompt in SAMPLE_PROMPTS[kind]:
        text = corpus.generation_prompt([{"role": "user", "content": prompt}]) if kind == "llama" else prompt
        ids = tk.encode(text)
        row = {"prompt": prompt, "prompt_text": text}
        for mode, temp in (("greedy", 0.0), ("sampled", 0.7)):
            out, _ = evaluate.generate(ref.logits, ids, 120, stop=stop, temperature=temp, top_p=0.9,
                                       seed=seed)
            row[mode] = tk.decode(out)
        rows.append(row)
    return rows


def report(name, preset, out, work, seed, extra):
    """Reloads the saved directory with the reference model: held-out
    perplexity, samples; writes report.json and report.md into work."""
    ref = refmodel.load_model(out)
    tk = hfdir.Tokenizer(hfdir.load_tokenizer(out))
    with open(os.path.join(work, "heldout.txt"), encoding="utf-8") as f:
        heldout = f.read()
    ids = tk.encode(heldout, add_special_tokens=True)
    t0 = time.time()
    ppl = evaluate.perplexity(ref.logits, ids)
    log(f"held-out perplexity {ppl['ppl']:.3f} over {ppl['n_scored']} predictions "
        f"({time.time() - t0:.0f} s)")
    stop = set(hfdir.generation_config(preset["kind"], tk.specials)["eos_token_id"]
               if preset["kind"] == "llama" else [tk.specials["<|endoftext|>"]])
    samples = sample_outputs(preset["kind"], ref, tk, stop, seed)
    n_params = sum(int(np.prod(w.shape)) for w in ref.w.values())
    rep = {"model": name, "seed": seed, "params": n_params, "dir_bytes": hfdir.dir_bytes(out),
           "heldout": ppl, "samples": samples, **extra}
    hfdir.write_json(os.path.join(work, "report.json"), rep, sort_keys=False)
    with open(os.path.join(work, "report.md"), "w", encoding="utf-8") as f:
        f.write(f"## {name}\n\nparams {n_params}, held-out ppl {ppl['ppl']:.3f} "
                f"({ppl['n_scored']} predictions, {ppl['n_chunks']} chunks)\n\n")
        for s in samples:
            for mode in ("greedy", "sampled"):
                f.write(f"**{s['prompt']}** ({mode}):\n```\n{s[mode]}\n```\n")
    return rep


# --- main -------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", choices=sorted(PRESETS), required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=TRAIN["steps"])
    ap.add_argument("--lr", type=float, default=TRAIN["lr"])
    ap.add_argument("--batch", type=int, default=TRAIN["batch"])
    ap.add_argument("--out", help="default examples/models/<model>")
    ap.add_argument("--build", default=os.path.join(ROOT, "build", "miniature"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--corpus-only", action="store_true")
    ap.add_argument("--eval-only", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    preset = PRESETS[args.model]
    kind = preset["kind"]
    out = args.out or os.path.join(ROOT, "examples", "models", args.model)
    work = os.path.join(args.build, args.model)
    t_start = time.time()
    train, _ = build_corpus(kind, work, args.seed)
    if args.corpus_only:
        return
    if args.eval_only:
        report(args.model, preset, out, work, args.seed, {})
        return

    tok = train_tokenizer(preset, train, args.seed)
    ids = bpe_train.special_ids(tok)
    tk = hfdir.Tokenizer(tok)
    config = (hfdir.llama_config if kind == "llama" else hfdir.falcon_config)(preset["vocab"], ids, preset)
    log(f"tokenizer: {preset['vocab']} ids ({time.time() - t_start:.0f} s)")

    torch.manual_seed(args.seed)
    model = models.build(config)
    models.init_weights(model)
    diff = evaluate.check_against_reference(model, config)
    log(f"training module == reference: max |logit diff| {diff:.2e} on perturbed random weights")

    cfg = dict(TRAIN, steps=args.steps, lr=args.lr, batch=args.batch)
    with open(os.path.join(work, "heldout.txt"), encoding="utf-8") as f:
        eval_ids = tk.encode(f.read(), add_special_tokens=True)
    batches = Batches(kind, train, tk, args.seed, preset["context"], cfg["batch"])
    history, train_s = train_model(model, batches, eval_ids, cfg, os.path.join(work, "train_log.jsonl"))
    model.eval()

    state = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    hfdir.save(out, config, hfdir.generation_config(kind, ids), tok,
               hfdir.tokenizer_config(kind, tok, preset["context"]), state)
    size = hfdir.dir_bytes(out)
    if size > MAX_DIR_BYTES:
        raise SystemExit(f"{out}: {size} bytes > {MAX_DIR_BYTES}")
    # The saved directory, read back by the reference, must be the trained model.
    ref = refmodel.load_model(out)
    x = torch.tensor([eval_ids[:preset["context"]]], dtype=torch.int64)
    with torch.no_grad():
        saved_diff = float((ref.logits(x) - model(x)).abs().max())
    if not saved_diff < 1e-4:
        raise SystemExit(f"saved checkpoint differs from the trained model by {saved_diff}")
    extra = {"steps": cfg["steps"], "train_config": {k: v for k, v in cfg.items()},
             "train_wall_s": round(train_s, 1), "total_wall_s": round(time.time() - t_start, 1),
             "final_train_loss": history[-1]["train_loss"], "history": history,
             "tokens_per_epoch": batches.tokens_per_epoch, "threads": args.threads,
             "load_average_1_5_15": list(os.getloadavg()), "reference_check_diff": diff,
             "saved_vs_trained_diff": saved_diff}
    rep = report(args.model, preset, out, work, args.seed, extra)
    log(f"done: {out} ({rep['dir_bytes']} bytes), train {train_s / 60:.1f} min, "
        f"final loss {history[-1]['train_loss']:.4f}, held-out ppl {rep['heldout']['ppl']:.3f}")


if __name__ == "__main__":
    main()
