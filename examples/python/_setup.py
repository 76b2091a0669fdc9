"""Shared by the examples: makes `import cria` work from a source checkout and
converts the bundled miniature model on first use."""
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "python"))  # harmless when cria is pip-installed

import cria  # noqa: E402


def miniature(name: str) -> str:
    """build/models/NAME.cria, converted from examples/models/NAME if missing."""
    out = ROOT / "build" / "models" / f"{name}.cria"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        print(f"converting examples/models/{name} -> {out.relative_to(ROOT)}", file=sys.stderr)
        cria.convert(ROOT / "examples" / "models" / name, out, quant="q4")
    return os.fspath(out)
