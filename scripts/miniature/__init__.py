"""Training the miniature Llama 3 and Falcon models (see scripts/train_miniature.py)."""
