"""Fixtures: the miniatures converted by cria.convert, and the cria CLI to
compare against (its output is the independent reference: the C++ CLI
drives the C API without any Python)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "python"))

import cria  # noqa: E402


def cli_path() -> str:
    return os.environ.get("CRIA_CLI", str(ROOT / "build" / "bin" / "cria"))


def run_cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    p = subprocess.run([cli_path(), *args], capture_output=True, timeout=300)
    if check and p.returncode != 0:
        raise AssertionError(f"cria {' '.join(args)} failed: {p.stderr.decode(errors='replace')}")
    return p


def cli_text(*args: str) -> str:
    """What `cria run` streams to stdout, without the newline it ends with."""
    out = run_cli("run", "--quiet", *args).stdout.decode("utf-8")
    assert out.endswith("\n")
    return out[:-1]


@pytest.fixture(scope="session")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    out = {}
    for name in ("llama-mini", "falcon-mini"):
        out[name] = cria.convert(ROOT / "examples" / "models" / name, d / f"{name}.cria", quant="q4")
    return out


@pytest.fixture(scope="session")
def llama(models):
    return models["llama-mini"]


@pytest.fixture(scope="session")
def falcon(models):
    return models["falcon-mini"]
