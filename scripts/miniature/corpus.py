"""Training and held-out text for the miniatures, built from Debian's `fortunes`.

Everything here is a pure function of the fortunes files (and, for the
training split, of the seed and epoch), so the held-out file the C++
`cria perplexity` test reads can be rebuilt from the package alone.
"""
import hashlib
import os
import re

import numpy as np

FORTUNES_DIR = "/usr/share/games/fortunes"
HELDOUT_MODULUS = 20  # 1 in 20 fortunes (5%) is held out, chosen by hash
MAX_CHARS = 1200      # drops ~1% of fortunes: long poems and song lyrics

# File -> topic named in requests; None = only generic requests. ascii-art is
# pictures, not language, and is left out.
TOPICS = {
    "art": "art", "computers": "computers", "cookie": None, "debian": "Debian",
    "definitions": "the meaning of words", "disclaimer": "disclaimers", "drugs": "drugs",
    "education": "education", "ethnic": "cultures", "food": "food", "fortunes": None,
    "goedel": "logic", "humorists": "humor", "kids": "kids", "knghtbrd": "hackers",
    "law": "the law", "linux": "Linux", "linuxcookie": "Linux", "literature": "literature",
    "love": "love", "magic": "magic", "medicine": "medicine", "men-women": "men and women",
    "miscellaneous": None, "news": "the news", "paradoxum": "paradoxes", "people": "people",
    "perl": "Perl", "pets": "pets", "platitudes": "life", "politics": "politics",
    "pratchett": "Terry Pratchett", "riddles": "riddles", "science": "science",
    "songs-poems": "poetry", "sports": "sports", "startrek": "Star Trek", "tao": "the Tao",
    "translate-me": "translation", "wisdom": "wisdom", "work": "work",
    "zippy": "Zippy the Pinhead",
}

GENERIC_REQUESTS = [
    "Tell me a fortune.", "Give me a fortune.", "Fortune, please.", "I'd like a fortune cookie.",
    "Tell me something wise.", "Give me a random quote.", "Share a fortune with me.",
    "What does my fortune say?", "Can you tell me my fortune?", "Say something interesting.",
    "Give me a quote.", "Crack open a fortune cookie for me.", "Surprise me.",
    "I need some wisdom today.",
]
TOPIC_REQUESTS = [
    "Tell me a fortune about {}.", "Give me a quote about {}.", "Share something about {}.",
    "Tell me something about {}.", "What do you know about {}?", "Give me a fortune about {}.",
    "Say something about {}.", "I want a quote on {}.", "Do you have a saying about {}?",
    "Tell me a joke about {}.", "Quote something on the subject of {}.",
    "Can you share a fortune about {}?", "Give me something about {}, please.",
    "What's a good line about {}?", "Share a quote about {}.", "Tell me about {}.",
]
SYSTEM_PROMPTS = [
    "You are a fortune cookie.", "You are a helpful assistant.",
    "You share fortunes from the Unix fortune program.", "Answer with one fortune.",
    "You are a witty assistant who answers with quotes.",
]
P_TOPIC, P_CASUAL, P_SYSTEM = 0.7, 0.15, 0.2

_C1 = re.compile("[\x80-\x9f]")


def clean(entry):
    """Resolves terminal overstrike (underline `_\\bx`, bold `x\\bx`), drops bells,
    strips surrounding whitespace. None for entries that cannot be cleaned:
    mojibake (C1 control characters) or empty ones."""
    entry = entry.replace("\x07", "")
    entry = re.sub("_\x08", "", entry)
    entry = re.sub(".\x08", "", entry)
    entry = entry.replace("\x08", "").strip()
    if not entry or _C1.search(entry):
        return None
    return entry


def load_fortunes(root=FORTUNES_DIR):
    """-> [(file name, fortune text)] in file-name then file order; duplicates
    (same text in two files) are kept once, at their first occurrence."""
    if not os.path.isdir(root):
        raise FileNotFoundError(f"{root} missing: install Debian's `fortunes` (scripts/setup)")
    out, seen = [], set()
    for name in sorted(os.listdir(root)):
        path = os.path.join(root, name)
        if name not in TOPICS or not os.path.isfile(path):
            continue  # .dat indexes, .u8 links, ascii-art
        with open(path, "rb") as f:
            body = f.read().decode("utf-8", errors="replace")
        for raw in body.split("\n%\n"):
            text = clean(raw.strip("%\n"))
            if text is None or len(text) > MAX_CHARS or text in seen:
                continue
            seen.add(text)
            out.append((name, text))
    return out


def fortune_hash(text):
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")


def split(fortunes):
    """-> (train, heldout): a fortune is held out iff sha256(text)[:8] (little
    endian) % 20 == 0, so the split does not depend on file order or seed."""
    train, held = [], []
    for f in fortunes:
        (held if fortune_hash(f[1]) % HELDOUT_MODULUS == 0 else train).append(f)
    return train, held


def render_llama3(messages, bos="<|begin_of_text|>"):
    """Llama 3 instruct template for a finished conversation (no generation
    prompt): bos, then per message `<|start_header_id|>{role}<|end_header_id|>\\n\\n`
    + trimmed content + `<|eot_id|>`. Jinja's `trim` strips whitespace, as str.strip."""
    out = [bos]
    for m in messages:
        out.append(f"<|start_header_id|>{m['role']}<|end_header_id|>\n\n{m['content'].strip()}<|eot_id|>")
    return "".join(out)


def generation_prompt(messages):
    """What the chat template renders with add_generation_prompt: the
    conversation so far plus the assistant header."""
    return render_llama3(messages) + "<|start_header_id|>assistant<|end_header_id|>\n\n"


def choose_messages(name, text, draws):
    """draws: 5 uniform numbers in [0, 1). -> chat messages for one fortune."""
    topic = TOPICS[name]
    if topic is not None and draws[0] < P_TOPIC:
        req = TOPIC_REQUESTS[int(draws[1] * len(TOPIC_REQUESTS))].format(topic)
    else:
        req = GENERIC_REQUESTS[int(draws[1] * len(GENERIC_REQUESTS))]
    if draws[2] < P_CASUAL:  # "tell me a fortune" style: lower case, no final punctuation
        req = req[0].lower() + req[1:].rstrip(".?")
    msgs = [{"role": "user", "content": req}, {"role": "assistant", "content": text}]
    if draws[3] < P_SYSTEM:
        msgs.insert(0, {"role": "system",
                        "content": SYSTEM_PROMPTS[int(draws[4] * len(SYSTEM_PROMPTS))]})
    return msgs


def heldout_draws(text):
    """Seed-independent draws for a held-out fortune (from its own hash)."""
    rng = np.random.default_rng(fortune_hash(text))
    return rng.random(5)


def llama_documents(fortunes, draws):
    """draws: [len(fortunes), 5] -> rendered conversations."""
    return [render_llama3(choose_messages(n, t, d)) for (n, t), d in zip(fortunes, draws)]


def falcon_documents(fortunes):
    """Plain fortunes; the caller puts <|endoftext|> after each."""
    return [t for _, t in fortunes]


def heldout_text(kind, held):
    """The held-out evaluation file: Llama conversations concatenated (each
    starting with <|begin_of_text|> text); Falcon fortunes each followed by
    <|endoftext|>. No separators beyond those."""
    if kind == "llama":
        return "".join(render_llama3(choose_messages(n, t, heldout_draws(t))) for n, t in held)
    return "".join(t + "<|endoftext|>" for _, t in held)
