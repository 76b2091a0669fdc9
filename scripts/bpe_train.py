#!/usr/bin/python3
"""Byte-level BPE trainer that writes a Hugging Face `tokenizer.json`.

Used to give test checkpoints (scripts/gen_checkpoint.py) and the miniature
models a small tokenizer with exactly the structure of the real models'
tokenizer.json files, so cria's tokenizer is tested on the real formats.

API (import with `sys.path.insert(0, "scripts")`; `import bpe_train`):

    bpe_train.train(texts, vocab_size, style="llama3", special_tokens=None) -> dict
        texts:          iterable of str (each is pre-tokenized on its own)
        vocab_size:     total number of ids, special tokens included; training
                        stops early only if the corpus runs out of pairs
        style:          "llama3" | "falcon" | "gpt2" (see STYLES below)
        special_tokens: list of str; None = the style's defaults
                        (DEFAULT_SPECIALS). Specials sit after the BPE vocab
                        for llama3/gpt2 (like 128000+ / 50256) and at ids 0..n-1
                        for falcon (like >>TITLE<<=0 ... <|endoftext|>=11).
        returns the tokenizer.json content as a dict (json.dump it with
        ensure_ascii=False).
    bpe_train.fortunes_corpus(max_bytes) -> list[str]
        fortunes from Debian's `fortunes` package, in a fixed file order.
    bpe_train.pretokenize(text, style) -> list[str]
        the byte-level-mapped pieces training counts (same splitting rules as
        the style's pre_tokenizer section).
    bpe_train.bytes_to_unicode() -> dict[int, str]   GPT-2 byte <-> char map.
    bpe_train.special_ids(tok) -> dict[str, int]     content -> id of added tokens.
    bpe_train.Encoder(tok).encode(text) -> list[int] / .decode(ids) -> str
        a small reference encoder for tokenizers this module writes (special
        tokens are matched in the text; no BOS is added). Checked against
        @lenml/tokenizers (a JS port of HF tokenizers) on fortunes text.

CLI:
    /usr/bin/python3 scripts/bpe_train.py --style falcon --vocab-size 512 \
        --out tokenizer.json [--input FILE ...] [--max-bytes 400000]

Algorithm: classic BPE over unique pre-tokenized words with incrementally
maintained pair counts and a lazy max-heap. Deterministic: ties in pair count
are broken by the smaller (left id, right id), as HF `tokenizers` does.
Base vocabulary: the 256 byte symbols in bytes_to_unicode() order.
"""
import argparse
import heapq
import json
import os
import sys

import regex

# Llama 3's split regex, verbatim from its tokenizer.json (tiktoken cl100k style).
LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
                  r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
# GPT-2's regex: what ByteLevel(use_regex=true) applies inside HF tokenizers.
GPT2_PATTERN = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
# HF's Punctuation pre-tokenizer: char::is_ascii_punctuation() or Unicode P*.
_PUNCT_RUN = regex.compile(r"[\p{P}!-/:-@\[-`{-~]+")
_LLAMA3_RE = regex.compile(LLAMA3_PATTERN)
_GPT2_RE = regex.compile(GPT2_PATTERN)
_NUMERIC_RUN = regex.compile(r"\p{N}+")  # Rust char::is_numeric = Nd|Nl|No
_DIGIT3 = regex.compile(r"[0-9][0-9][0-9]")

DEFAULT_SPECIALS = {
    # The first ten of Llama 3's 256 reserved ids (128000..128009), same order.
    "llama3": ["<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>",
               "<|reserved_special_token_1|>", "<|reserved_special_token_2|>",
               "<|reserved_special_token_3|>", "<|start_header_id|>", "<|end_header_id|>",
               "<|reserved_special_token_4|>", "<|eot_id|>"],
    # tiiuae/falcon-7b: ids 0..11 in this order; <|endoftext|>=11 is BOS/EOS.
    "falcon": [">>TITLE<<", ">>ABSTRACT<<", ">>INTRODUCTION<<", ">>SUMMARY<<", ">>COMMENT<<",
               ">>ANSWER<<", ">>QUESTION<<", ">>DOMAIN<<", ">>PREFIX<<", ">>SUFFIX<<",
               ">>MIDDLE<<", "<|endoftext|>"],
    "gpt2": ["<|endoftext|>"],
}
STYLES = tuple(DEFAULT_SPECIALS)


def bytes_to_unicode():
    """GPT-2's reversible byte -> printable char map (printable Latin-1 bytes map
    to themselves, the rest to U+0100 onwards, in byte order)."""
    keep = list(range(0x21, 0x7F)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    out = {b: chr(b) for b in keep}
    n = 0
    for b in range(256):
        if b not in out:
            out[b] = chr(256 + n)
            n += 1
    return out


_B2U = bytes_to_unicode()
# Base vocab order: printable bytes first (as GPT-2's encoder.json), then the rest.
_BASE_ORDER = sorted(_B2U, key=lambda b: ord(_B2U[b]))


def _bytelevel(s):
    return "".join(_B2U[b] for b in s.encode("utf-8"))


def _split_isolated(pattern, text):
    """Split keeping both matches and the gaps between them (behavior Isolated)."""
    out, pos = [], 0
    for m in pattern.finditer(text):
        if m.start() > pos:
            out.append(text[pos:m.start()])
        if m.end() > m.start():
            out.append(m.group())
        pos = m.end()
    if pos < len(text):
        out.append(text[pos:])
    return out


def pretokenize(text, style):
    if style == "llama3":  # Split(regex, Isolated) then ByteLevel(use_regex=false)
        return [_bytelevel(p) for p in _split_isolated(_LLAMA3_RE, text)]
    if style == "gpt2":  # ByteLevel(use_regex=true)
        return [_bytelevel(p) for p in _split_isolated(_GPT2_RE, text)]
    if style == "falcon":
        # Punctuation(Contiguous) -> ByteLevel(use_regex) -> Digits(false) -> Split(3 digits).
        # The last two run on the byte-mapped text, as in HF.
        pieces = []
        for p in _split_isolated(_PUNCT_RUN, text):
            for q in _split_isolated(_GPT2_RE, p):
                for r in _split_isolated(_NUMERIC_RUN, _bytelevel(q)):
                    pieces.extend(_split_isolated(_DIGIT3, r))
        return pieces
    raise ValueError(f"unknown style {style!r}; expected one of {STYLES}")


def fortunes_corpus(max_bytes=400_000, root="/usr/share/games/fortunes"):
    if not os.path.isdir(root):
        raise FileNotFoundError(f"{root} missing: install Debian's `fortunes` (scripts/setup)")
    texts, total = [], 0
    for name in sorted(os.listdir(root)):
        path = os.path.join(root, name)
        if "." in name or not os.path.isfile(path):
            continue  # skip the .dat indexes and .u8 links
        with open(path, "rb") as f:
            body = f.read().decode("utf-8", errors="replace")
        for entry in body.split("\n%\n"):
            entry = entry.strip("%\n")
            if not entry:
                continue
            texts.append(entry + "\n")
            total += len(entry) + 1
            if total >= max_bytes:
                return texts
    return texts


def _learn_merges(word_counts, n_new):
    """word_counts: {tuple of symbol ids: count}. Learns merges until n_new new
    tokens exist. Returns the merges [(a, b)] in order, the id each produced
    (new ids count up from 256) and the id -> string table."""
    words = [list(w) for w in word_counts]
    freqs = list(word_counts.values())
    counts, where = {}, {}
    for i, w in enumerate(words):
        for p in zip(w, w[1:]):
            counts[p] = counts.get(p, 0) + freqs[i]
            where.setdefault(p, set()).add(i)
    heap = [(-c, p[0], p[1]) for p, c in counts.items()]
    heapq.heapify(heap)
    strings = {i: _B2U[b] for i, b in enumerate(_BASE_ORDER)}
    by_string = {s: i for i, s in strings.items()}
    merges, produced = [], []
    next_id = 256
    while next_id < 256 + n_new and heap:
        negc, a, b = heapq.heappop(heap)
        if counts.get((a, b), 0) != -negc or negc == 0:
            continue  # stale heap entry
        s = strings[a] + strings[b]
        new = by_string.get(s)
        if new is None:  # two pairs can spell the same string: reuse its id (as HF)
            new = next_id
            next_id += 1
            strings[new] = s
            by_string[s] = new
        merges.append((a, b))
        produced.append(new)
        touched = set()
        for i in sorted(where.pop((a, b), ())):
            w, f = words[i], freqs[i]
            old_pairs = list(zip(w, w[1:]))
            j, nw = 0, []
            while j < len(w):
                if j + 1 < len(w) and w[j] == a and w[j + 1] == b:
                    nw.append(new)
                    j += 2
                else:
                    nw.append(w[j])
                    j += 1
            words[i] = nw
            new_pairs = list(zip(nw, nw[1:]))
            for p in old_pairs:
                counts[p] -= f
                touched.add(p)
            for p in new_pairs:
                counts[p] = counts.get(p, 0) + f
                touched.add(p)
            for p in set(old_pairs) - set(new_pairs):
                if p in where:
                    where[p].discard(i)
            for p in new_pairs:
                where.setdefault(p, set()).add(i)
        for p in touched:
            c = counts.get(p, 0)
            if c <= 0:
                counts.pop(p, None)
                where.pop(p, None)
            else:
                heapq.heappush(heap, (-c, p[0], p[1]))
    return merges, produced, strings


def _added_token(tid, content):
    return {"id": tid, "content": content, "single_word": False, "lstrip": False,
            "rstrip": False, "normalized": False, "special": True}


def _bytelevel_section(add_prefix_space, trim_offsets, use_regex):
    return {"type": "ByteLevel", "add_prefix_space": add_prefix_space,
            "trim_offsets": trim_offsets, "use_regex": use_regex}


def _sections(style, bos):
    """pre_tokenizer, post_processor, decoder exactly as the real models ship them."""
    decoder = _bytelevel_section(True, True, True)
    if style == "llama3":  # meta-llama/Meta-Llama-3-8B tokenizer.json
        pre = {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": LLAMA3_PATTERN}, "behavior": "Isolated",
             "invert": False},
            _bytelevel_section(False, True, False)]}
        post = {"type": "Sequence", "processors": [
            _bytelevel_section(True, False, True),
            {"type": "TemplateProcessing",
             "single": [{"SpecialToken": {"id": bos[0], "type_id": 0}},
                        {"Sequence": {"id": "A", "type_id": 0}}],
             "pair": [{"SpecialToken": {"id": bos[0], "type_id": 0}},
                      {"Sequence": {"id": "A", "type_id": 0}},
                      {"SpecialToken": {"id": bos[0], "type_id": 1}},
                      {"Sequence": {"id": "B", "type_id": 1}}],
             "special_tokens": {bos[0]: {"id": bos[0], "ids": [bos[1]], "tokens": [bos[0]]}}}]}
        return pre, post, decoder
    if style == "falcon":  # tiiuae/falcon-7b tokenizer.json
        pre = {"type": "Sequence", "pretokenizers": [
            {"type": "Punctuation", "behavior": "Contiguous"},
            _bytelevel_section(False, True, True),
            {"type": "Digits", "individual_digits": False},
            {"type": "Split", "pattern": {"Regex": "[0-9][0-9][0-9]"}, "behavior": "Isolated",
             "invert": False}]}
        return pre, _bytelevel_section(True, False, True), decoder
    # gpt2 (falcon-rw-1b ships GPT-2's tokenizer)
    return _bytelevel_section(False, True, True), _bytelevel_section(True, False, True), decoder


def train(texts, vocab_size, style="llama3", special_tokens=None):
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r}; expected one of {STYLES}")
    specials = list(DEFAULT_SPECIALS[style] if special_tokens is None else special_tokens)
    n_new = vocab_size - len(specials) - 256
    if n_new < 0:
        raise ValueError(f"vocab_size {vocab_size} < 256 bytes + {len(specials)} specials")
    sym = {_B2U[b]: i for i, b in enumerate(_BASE_ORDER)}
    word_counts = {}
    for text in texts:
        for piece in pretokenize(text, style):
            if piece in specials:
                continue
            key = tuple(sym[c] for c in piece)
            word_counts[key] = word_counts.get(key, 0) + 1
    merges, produced, strings = _learn_merges(word_counts, n_new)

    # BPE ids: bytes, then merge results in creation order; specials before
    # (falcon) or after (llama3, gpt2) them.
    bpe_ids = list(range(256)) + sorted(set(produced))
    offset = len(specials) if style == "falcon" else 0
    remap = {old: offset + k for k, old in enumerate(bpe_ids)}
    vocab = {}
    if style == "falcon":
        for k, s in enumerate(specials):
            vocab[s] = k
    for old in bpe_ids:
        vocab[strings[old]] = remap[old]
    first_special = 0 if style == "falcon" else len(bpe_ids)
    special_ids = {s: first_special + k for k, s in enumerate(specials)}
    bos = (specials[0], special_ids[specials[0]])
    pre, post, decoder = _sections(style, bos)
    model = {"type": "BPE", "dropout": None, "unk_token": None,
             "continuing_subword_prefix": None, "end_of_word_suffix": None,
             "fuse_unk": False, "byte_fallback": False}
    if style == "llama3":
        model["ignore_merges"] = True  # as in Llama 3's tokenizer.json
    model["vocab"] = vocab
    model["merges"] = [f"{strings[a]} {strings[b]}" for a, b in merges]
    return {"version": "1.0", "truncation": None, "padding": None,
            "added_tokens": [_added_token(i, s) for s, i in special_ids.items()],
            "normalizer": None, "pre_tokenizer": pre, "post_processor": post,
            "decoder": decoder, "model": model}


def special_ids(tok):
    return {t["content"]: t["id"] for t in tok["added_tokens"]}


def vocab_len(tok):
    ids = list(tok["model"]["vocab"].values()) + [t["id"] for t in tok["added_tokens"]]
    return max(ids) + 1


class Encoder:
    """Encodes with a tokenizer.json written by train() (any of the styles)."""

    def __init__(self, tok):
        m = tok["model"]
        self.vocab = m["vocab"]
        self.ranks = {tuple(x.split(" ")): r for r, x in enumerate(m["merges"])}
        self.ignore_merges = m.get("ignore_merges", False)
        self.specials = special_ids(tok)
        self.inv = {i: s for s, i in self.vocab.items()}
        self.inv.update({i: s for s, i in self.specials.items()})
        self.style = _style_of(tok)
        alts = sorted(self.specials, key=len, reverse=True)
        self.special_re = regex.compile("|".join(regex.escape(s) for s in alts)) if alts else None
        self.u2b = {c: b for b, c in _B2U.items()}

    def _bpe(self, piece):
        if self.ignore_merges and piece in self.vocab:
            return [self.vocab[piece]]
        parts = list(piece)
        while len(parts) > 1:
            best = min(range(len(parts) - 1),
                       key=lambda i: self.ranks.get((parts[i], parts[i + 1]), 1 << 60))
            if (parts[best], parts[best + 1]) not in self.ranks:
                break
            parts[best:best + 2] = [parts[best] + parts[best + 1]]
        return [self.vocab[p] for p in parts]

    def encode(self, text):
        ids = []
        chunks = _split_isolated(self.special_re, text) if self.special_re else [text]
        for chunk in chunks:
            if chunk in self.specials:
                ids.append(self.specials[chunk])
                continue
            for piece in pretokenize(chunk, self.style):
                ids.extend(self._bpe(piece))
        return ids

    def decode(self, ids):
        out = bytearray()
        for i in ids:
            s = self.inv[i]
            if s in self.specials:
                out += s.encode("utf-8")
            else:
                out += bytes(self.u2b[c] for c in s)
        return out.decode("utf-8", errors="replace")


def _style_of(tok):
    pre = tok["pre_tokenizer"]
    if pre["type"] == "ByteLevel":
        return "gpt2"
    kinds = [p["type"] for p in pre["pretokenizers"]]
    return "falcon" if "Punctuation" in kinds else "llama3"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--style", choices=STYLES, default="llama3")
    ap.add_argument("--vocab-size", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--input", nargs="*", help="UTF-8 text files (default: fortunes)")
    ap.add_argument("--max-bytes", type=int, default=400_000)
    args = ap.parse_args()
    if args.input:
        texts = [open(p, encoding="utf-8", errors="replace").read() for p in args.input]
    else:
        texts = fortunes_corpus(args.max_bytes)
    tok = train(texts, args.vocab_size, args.style)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(tok, f, ensure_ascii=False, indent=2)
    print(f"{args.out}: {vocab_len(tok)} ids, {len(tok['model']['merges'])} merges",
          file=sys.stderr)


if __name__ == "__main__":
    main()
