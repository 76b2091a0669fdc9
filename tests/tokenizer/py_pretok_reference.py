#!/usr/bin/python3
"""Reference pre-token splits for cria's hand-written regex matchers.

    /usr/bin/python3 tests/tokenizer/py_pretok_reference.py OUT_DIR

Splits every corpus line (corpus.txt) and multi-line case (multiline.json)
with the Llama 3 and GPT-2 regexes exactly as written in tokenizer.json,
using the `regex` module (python3-regex): a backtracking engine like
Oniguruma, with \\s = Unicode White_Space and Unicode simple case folding
(U+017F folds to 's'), which the JavaScript engines lack. Writes
OUT_DIR/pretok.json. Exits 77 (ctest "skipped") without python3-regex.
"""
import json
import os
import sys

try:
    import regex
except ImportError:
    print("SKIP: python3-regex is not installed; run scripts/setup")
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
LLAMA3 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
          r"|\s*[\r\n]+|\s+(?!\S)|\s+")
GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"


def split(pattern, text):
    pieces, pos = [], 0
    for m in pattern.finditer(text):
        if m.start() > pos:
            pieces.append(text[pos:m.start()])  # Isolated keeps unmatched text too
        pieces.append(m.group(0))
        pos = m.end()
    if pos < len(text):
        pieces.append(text[pos:])
    return pieces


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: py_pretok_reference.py OUT_DIR")
    with open(os.path.join(HERE, "corpus.txt"), encoding="utf-8") as f:
        lines = f.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    with open(os.path.join(HERE, "multiline.json"), encoding="utf-8") as f:
        lines += json.load(f)
    llama3, gpt2 = regex.compile(LLAMA3), regex.compile(GPT2)
    cases = [{"text": t, "llama3": split(llama3, t), "gpt2": split(gpt2, t)} for t in lines]
    os.makedirs(sys.argv[1], exist_ok=True)
    with open(os.path.join(sys.argv[1], "pretok.json"), "w", encoding="utf-8") as f:
        json.dump({"regex_version": regex.__version__, "cases": cases}, f, ensure_ascii=False)
    print("py_pretok_reference: %d cases (regex %s)" % (len(cases), regex.__version__))


if __name__ == "__main__":
    main()
