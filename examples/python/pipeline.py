#!/usr/bin/env python3
"""The Falcon seed's transformers pipeline, on the device: `transformers` ->
`cria`, "tiiuae/falcon-11B" -> a .cria file. torch_dtype and device_map
are accepted and have no effect (the file fixes the weights' types; cria
places its work itself), so they are left out here.

    python3 examples/python/pipeline.py [MODEL.cria]
"""
import sys

from _setup import cria, miniature

model = sys.argv[1] if len(sys.argv) > 1 else miniature("falcon-mini")

tokenizer = cria.AutoTokenizer.from_pretrained(model)
pipeline = cria.pipeline(
    "text-generation",
    model=model,
    tokenizer=tokenizer,
    device_map="auto",
)
sequences = pipeline(
   "Can you explain the concepts of Quantum Computing?",
    max_length=200,
    do_sample=True,
    top_k=10,
    num_return_sequences=1,
    eos_token_id=tokenizer.eos_token_id,
)
for seq in sequences:
    print(f"Result: {seq['generated_text']}")
