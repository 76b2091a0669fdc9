#!/usr/bin/python3
"""Writes two small byte-level BPE tokenizers for the tokenizer tests:

    /usr/bin/python3 tests/tokenizer/make_test_tokenizers.py

  tests/tokenizer/data/falcon_mini/   tokenizer.json with the structure of
      tiiuae/falcon-7b: pre_tokenizer Sequence[Punctuation(Contiguous),
      ByteLevel(use_regex), Digits, Split("[0-9][0-9][0-9]")], no normalizer,
      no post-processor, ByteLevel decoder, the 12 special tokens >>TITLE<< (0)
      ... >>MIDDLE<< (10), <|endoftext|> (11); merges as "a b" strings.
  tests/tokenizer/data/gpt2_mini/     GPT-2 structure: ByteLevel(use_regex)
      pre-tokenizer and post-processor, merges as ["a", "b"] pairs (the
      tokenizers >= 0.20 format), <|endoftext|> last, plus added tokens that
      exercise lstrip / rstrip / normalized.

The vocabularies (about 1.5K tokens) are trained here, deterministically, by
plain BPE on the Debian fortunes text. Needs python3-regex.
"""
import collections
import json
import os

import regex

HERE = os.path.dirname(os.path.abspath(__file__))
FORTUNES = "/usr/share/games/fortunes"
GPT2_RE = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")

FALCON_SPECIALS = [">>TITLE<<", ">>ABSTRACT<<", ">>INTRODUCTION<<", ">>SUMMARY<<", ">>COMMENT<<",
                   ">>ANSWER<<", ">>QUESTION<<", ">>DOMAIN<<", ">>PREFIX<<", ">>SUFFIX<<", ">>MIDDLE<<",
                   "<|endoftext|>"]

FALCON_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if not loop.first %}{{ '\\n' }}{% endif %}"
    "{% if message['role'] == 'system' %}{{ 'System: ' }}"
    "{% elif message['role'] == 'user' %}{{ 'User: ' }}"
    "{% elif message['role'] == 'assistant' %}{{ 'Falcon: ' }}{% endif %}"
    "{{ message['content'] | trim }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '\\n' + 'Falcon:' }}{% endif %}")


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


B2U = bytes_to_unicode()


def training_texts(files):
    for name in files:
        with open(os.path.join(FORTUNES, name), "rb") as f:
            yield f.read().decode("utf-8", errors="replace")
    # Non-English text too, so that merges inside multi-byte characters exist
    # (their bytes are what Falcon's Digits step may split): the hand-written
    # lines at the top of the test corpus, weighted up.
    with open(os.path.join(HERE, "corpus.txt"), encoding="utf-8") as f:
        yield "\n".join(f.read().split("\n")[:300]) * 30


def training_words(files, falcon):
    counts = collections.Counter()
    for text in training_texts(files):
        for piece in GPT2_RE.findall(text):
            if falcon:
                # Roughly Falcon's split: punctuation and digits apart.
                for sub in regex.findall(r"\p{P}+|\p{N}{1,3}|[^\p{P}\p{N}]+", piece):
                    counts["".join(B2U[b] for b in sub.encode("utf-8"))] += 1
            else:
                counts["".join(B2U[b] for b in piece.encode("utf-8"))] += 1
    return counts


def train(counts, n_merges):
    words = [list(w) for w in counts]
    freqs = [counts[w] for w in counts]
    pairs = collections.Counter()
    where = collections.defaultdict(set)
    for i, w in enumerate(words):
        for a, b in zip(w, w[1:]):
            pairs[(a, b)] += freqs[i]
            where[(a, b)].add(i)
    merges = []
    for _ in range(n_merges):
        if not pairs:
            break
        # Most frequent pair; ties broken by the pair itself, for determinism.
        best = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))[0]
        if pairs[best] <= 0:
            break
        merges.append(best)
        a, b = best
        for i in list(where[best]):
            w = words[i]
            f = freqs[i]
            for x, y in zip(w, w[1:]):
                pairs[(x, y)] -= f
                if pairs[(x, y)] <= 0:
                    del pairs[(x, y)]
            out = []
            k = 0
            while k < len(w):
                if k + 1 < len(w) and w[k] == a and w[k + 1] == b:
                    out.append(a + b)
                    k += 2
                else:
                    out.append(w[k])
                    k += 1
            words[i] = out
            for x, y in zip(out, out[1:]):
                pairs[(x, y)] += f
                where[(x, y)].add(i)
        where.pop(best, None)
    return merges


def write(dirname, tokenizer, config):
    os.makedirs(dirname, exist_ok=True)
    with open(os.path.join(dirname, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tokenizer, f, ensure_ascii=False, indent=1)
        f.write("\n")
    with open(os.path.join(dirname, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print("make_test_tokenizers: %s: %d tokens, %d merges" %
          (os.path.relpath(dirname), len(tokenizer["model"]["vocab"]), len(tokenizer["model"]["merges"])))


def added(i, content, special, **flags):
    d = {"id": i, "content": content, "single_word": False, "lstrip": False, "rstrip": False,
         "normalized": not special, "special": special}
    d.update(flags)
    return d


def bpe_model(vocab, merges, as_pairs):
    return {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
            "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
            "vocab": vocab,
            "merges": [[a, b] for a, b in merges] if as_pairs else ["%s %s" % (a, b) for a, b in merges]}


def falcon_mini(files):
    merges = train(training_words(files, falcon=True), 1250)
    vocab = {}
    for s in FALCON_SPECIALS:
        vocab[s] = len(vocab)
    for b in range(256):
        vocab.setdefault(B2U[b], len(vocab))
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    tok = {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [added(i, s, True) for i, s in enumerate(FALCON_SPECIALS)],
        "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Punctuation", "behavior": "Contiguous"},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
            {"type": "Digits", "individual_digits": False},
            {"type": "Split", "pattern": {"Regex": "[0-9][0-9][0-9]"}, "behavior": "Isolated", "invert": False},
        ]},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": bpe_model(vocab, merges, as_pairs=False),
    }
    config = {"add_prefix_space": False, "eos_token": "<|endoftext|>", "model_max_length": 2048,
              "tokenizer_class": "PreTrainedTokenizerFast", "chat_template": FALCON_CHAT_TEMPLATE}
    write(os.path.join(HERE, "data", "falcon_mini"), tok, config)


def gpt2_mini(files):
    merges = train(training_words(files, falcon=False), 1300)
    vocab = {}
    for b in range(256):
        vocab[B2U[b]] = len(vocab)
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    n = len(vocab)
    extra = [added(n, "<|endoftext|>", True),
             added(n + 1, "<mask>", False, lstrip=True),
             added(n + 2, "[SEP]", True, rstrip=True),
             added(n + 3, "hello world", False)]
    vocab["<|endoftext|>"] = n
    tok = {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": extra,
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": bpe_model(vocab, merges, as_pairs=True),
    }
    config = {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
              "add_prefix_space": False, "model_max_length": 1024, "tokenizer_class": "PreTrainedTokenizerFast"}
    write(os.path.join(HERE, "data", "gpt2_mini"), tok, config)


def main():
    falcon_mini(["computers", "science", "linux", "wisdom"])
    gpt2_mini(["people", "literature", "songs-poems", "work"])


if __name__ == "__main__":
    main()
