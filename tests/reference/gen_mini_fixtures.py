#!/usr/bin/python3
"""Golden fixtures for the trained miniatures (examples/models/{llama,falcon}-mini).

    /usr/bin/python3 tests/reference/gen_mini_fixtures.py [--check] [--no-js] [--model NAME ...]

Writes tests/reference/fixtures/mini-llama.json and mini-falcon.json: for 4
fixed prompts, the prompt text, its token ids, the first 32 greedy tokens of
the float32 reference (tests/reference/refmodel.py on the committed
checkpoint) and the smallest top-1 minus top-2 logit margin on the way; and
the held-out perplexity (protocol: scripts/miniature/evaluate.py perplexity()).
The held-out file is rebuilt from Debian's `fortunes` into
build/miniature/<model>/heldout.txt (the same text as
`scripts/train_miniature.py --model <model> --corpus-only` writes).

Token ids come from scripts/bpe_train.py's Encoder; unless --no-js they are
checked against @lenml/tokenizers (node) for the prompts and the whole held-out
file, and the Llama prompts against the official chat template rendered by
@huggingface/jinja. --check recomputes and compares with the committed
fixtures (ids exactly, numbers to 1e-4 relative) without writing.
"""
import argparse
import hashlib
import json
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
sys.path.insert(0, HERE)

import torch  # noqa: E402

import refmodel  # noqa: E402
from miniature import corpus, evaluate, hfdir  # noqa: E402

N_GREEDY = 32
MODELS = {
    "llama-mini": {
        "fixture": "mini-llama.json", "kind": "llama",
        "prompts": [
            [{"role": "user", "content": "Tell me a fortune."}],
            [{"role": "user", "content": "Give me a quote about love."}],
            [{"role": "system", "content": "You are a fortune cookie."},
             {"role": "user", "content": "Tell me a fortune about computers."}],
            [{"role": "user", "content": "Share something about science."}],
        ]},
    "falcon-mini": {
        "fixture": "mini-falcon.json", "kind": "falcon",
        "prompts": ["The best way to", "A computer is", "Love is",
                    "There are two kinds of people"]},
}

# Encodes with @lenml/tokenizers and renders the chat template with
# @huggingface/jinja. stdin: {dir, texts: [..], heldout, conversations: [..]}.
JS = r"""
import fs from "node:fs";
const input = JSON.parse(fs.readFileSync(0, "utf8"));
const lenml = await import("@lenml/tokenizers");
const read = (f) => JSON.parse(fs.readFileSync(`${input.dir}/${f}`, "utf8"));
const tc = read("tokenizer_config.json");
const tok = lenml.TokenizerLoader.fromPreTrained({ tokenizerJSON: read("tokenizer.json"), tokenizerConfig: tc });
const out = {
  ids: input.texts.map((t) => Array.from(tok.encode(t, { add_special_tokens: false }))),
  heldout: Array.from(tok.encode(input.heldout, { add_special_tokens: true })),
  rendered: [],
};
if (input.conversations.length) {
  const { Template } = await import("@huggingface/jinja");
  const tpl = new Template(tc.chat_template);
  out.rendered = input.conversations.map((messages) =>
    tpl.render({ messages, bos_token: tc.bos_token, eos_token: tc.eos_token, add_generation_prompt: true }));
}
process.stdout.write(JSON.stringify(out));
"""


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def heldout_file(name, kind):
    """Rebuilds build/miniature/<name>/heldout.txt (rewritten only if it differs)."""
    _, held = corpus.split(corpus.load_fortunes())
    text = corpus.heldout_text(kind, held)
    path = os.path.join(ROOT, "build", "miniature", name, "heldout.txt")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    old = open(path, encoding="utf-8").read() if os.path.exists(path) else None
    if old != text:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    return path, text


def js_check(model_dir, texts, ids, heldout, heldout_ids, conversations):
    req = {"dir": model_dir, "texts": texts, "heldout": heldout, "conversations": conversations}
    proc = subprocess.run(["node", "--input-type=module", "-e", JS], input=json.dumps(req),
                          capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"node failed (run scripts/setup for the npm packages, or --no-js):\n"
                         f"{proc.stderr[-2000:]}")
    js = json.loads(proc.stdout)
    for t, mine, theirs in zip(texts, ids, js["ids"]):
        if mine != theirs:
            raise SystemExit(f"@lenml/tokenizers disagrees on {t!r}:\n  {mine}\n  {theirs}")
    if js["heldout"] != heldout_ids:
        first = next((i for i, (a, b) in enumerate(zip(js["heldout"], heldout_ids)) if a != b),
                     min(len(js["heldout"]), len(heldout_ids)))
        raise SystemExit(f"@lenml/tokenizers disagrees on the held-out file at token {first}")
    for t, r in zip(texts, js["rendered"]):
        if t != r:
            raise SystemExit(f"official chat template renders {r!r}, we use {t!r}")
    return {"tokenizer": "@lenml/tokenizers", "prompts": len(texts), "heldout_tokens": len(heldout_ids),
            "chat_template": "@huggingface/jinja" if js["rendered"] else None}


def build_fixture(name, spec, use_js, models_root):
    model_dir = os.path.join(models_root, name)
    kind = spec["kind"]
    ref = refmodel.load_model(model_dir)
    tk = hfdir.Tokenizer(hfdir.load_tokenizer(model_dir))
    prompts, texts = [], []
    for p in spec["prompts"]:
        text = corpus.generation_prompt(p) if kind == "llama" else p
        ids = tk.encode(text)
        greedy, margin = evaluate.generate(ref.logits, ids, N_GREEDY)
        entry = {"messages": p} if kind == "llama" else {}
        entry.update({"text": text, "ids": ids, "greedy_ids": greedy,
                      "greedy_text": tk.decode(greedy), "greedy_min_margin": round(margin, 6)})
        prompts.append(entry)
        texts.append(text)
    path, heldout = heldout_file(name, kind)
    held_ids = tk.encode(heldout, add_special_tokens=True)
    ppl = evaluate.perplexity(ref.logits, held_ids)
    checked = None
    if use_js:
        convs = list(spec["prompts"]) if kind == "llama" else []
        checked = js_check(model_dir, texts, [p["ids"] for p in prompts], heldout, held_ids, convs)
    rel = os.path.relpath(path, ROOT)
    return {
        "model": name,
        "model_dir": os.path.relpath(model_dir, ROOT),
        "model_safetensors_sha256": sha256_file(os.path.join(model_dir, "model.safetensors")),
        "tokenizer_json_sha256": sha256_file(os.path.join(model_dir, "tokenizer.json")),
        "weights_dtype": "F32",
        "special_ids": dict(sorted(tk.specials.items(), key=lambda kv: kv[1])),
        "prompt_note": ("text = the official Llama 3 chat template applied to messages with "
                        "add_generation_prompt; ids = tokenize(text) with special-token text "
                        "matched and no BOS added (the text starts with <|begin_of_text|>)"
                        if kind == "llama" else
                        "ids = tokenize(text), no BOS (Falcon adds none)"),
        "greedy_note": (f"{N_GREEDY} argmax tokens after ids (lowest id on ties), float32 "
                        "reference, no stop tokens applied"),
        "prompts": prompts,
        "perplexity": {
            "file": rel,
            "regenerate": f"/usr/bin/python3 scripts/train_miniature.py --model {name} --corpus-only",
            "file_sha256": sha256_file(path),
            "n_ctx": evaluate.PPL_CONTEXT,
            "add_bos": bool(tk.bos),
            "special_text_is_special": True,
            "n_tokens": ppl["n_tokens"], "n_chunks": ppl["n_chunks"], "n_scored": ppl["n_scored"],
            "nll_mean": round(ppl["nll_mean"], 6), "ppl": round(ppl["ppl"], 5),
        },
        "js_checked": checked,
    }


def compare(old, new, path=""):
    """Ids, hashes and strings exactly; floats to 1e-4 relative. -> list of differences."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = [] if set(old) == set(new) else [f"{path}: keys {sorted(set(old) ^ set(new))} differ"]
        for k in set(old) & set(new):
            if k != "js_checked":
                out += compare(old[k], new[k], f"{path}.{k}")
        return out
    if isinstance(old, list) and isinstance(new, list):
        if len(old) != len(new):
            return [f"{path}: length {len(old)} != {len(new)}"]
        return [d for i, (a, b) in enumerate(zip(old, new)) for d in compare(a, b, f"{path}[{i}]")]
    if isinstance(old, float) or isinstance(new, float):
        ok = abs(old - new) <= 1e-4 * max(1.0, abs(old))
        return [] if ok else [f"{path}: {old} != {new}"]
    return [] if old == new else [f"{path}: {old!r} != {new!r}"]


def dumps(obj):
    """Indented JSON with lists of numbers kept on one line."""
    text = json.dumps(obj, indent=1, ensure_ascii=False)
    return re.sub(r"\[\s*(-?[0-9][0-9.e+-]*(?:,\s*-?[0-9][0-9.e+-]*)*)\s*\]",
                  lambda m: "[" + re.sub(r",\s+", ", ", m.group(1)) + "]", text) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="compare with the committed fixtures")
    ap.add_argument("--no-js", action="store_true", help="skip the node cross-check")
    ap.add_argument("--model", nargs="*", choices=sorted(MODELS), default=sorted(MODELS))
    ap.add_argument("--models-root", default=os.path.join(ROOT, "examples", "models"),
                    help="directory holding llama-mini/ and falcon-mini/ (for trying new weights)")
    ap.add_argument("--out", default=os.path.join(HERE, "fixtures"), help="fixture directory")
    args = ap.parse_args()
    torch.set_num_threads(2)
    failed = False
    for name in args.model:
        spec = MODELS[name]
        fx = build_fixture(name, spec, not args.no_js, args.models_root)
        path = os.path.join(args.out, spec["fixture"])
        if args.check:
            with open(path, encoding="utf-8") as f:
                diffs = compare(json.load(f), fx)
            failed |= bool(diffs)
            print(f"{spec['fixture']}: " + ("OK" if not diffs else "DIFFERS\n  " + "\n  ".join(diffs[:20])))
            continue
        with open(path, "w", encoding="utf-8") as f:
            f.write(dumps(fx))
        print(f"{spec['fixture']}: ppl {fx['perplexity']['ppl']}, min margin "
              f"{min(p['greedy_min_margin'] for p in fx['prompts']):.4f}, js: {fx['js_checked']}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
