#!/usr/bin/env python3
"""The Llama 3 seed's Replicate loop, on the device: `replicate` -> `cria`,
"meta/meta-llama-3-70b-instruct" -> a .cria file (or a `cria serve` URL).

    python3 examples/python/stream.py [MODEL.cria | http://127.0.0.1:8080]
"""
import sys

from _setup import cria, miniature

model = sys.argv[1] if len(sys.argv) > 1 else miniature("llama-mini")

# The meta/meta-llama-3-70b-instruct model can stream output as it's running.
for event in cria.stream(
    model,
    input={
        "prompt": "Can you write a poem about open source machine learning?"
    },
):
    print(str(event), end="")
print()
