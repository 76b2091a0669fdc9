"""cria.convert against `cria convert`, and the ctypes structures against the C header."""
import ctypes
import shutil
import subprocess

import pytest

import cria
from cria import _lib

from conftest import ROOT, cli_text, run_cli


def test_convert_progress_and_result(tmp_path, llama):
    seen = []
    out = cria.convert(ROOT / "examples" / "models" / "falcon-mini", tmp_path / "f.cria", quant="q8",
                       progress=seen.append)
    assert seen and seen[-1].bytes_done == seen[-1].bytes_total and seen[-1].tensor_done
    assert all(a.bytes_done <= b.bytes_done for a, b in zip(seen, seen[1:]))
    assert seen[-1].index + 1 == seen[-1].count
    run_cli("convert", str(ROOT / "examples" / "models" / "falcon-mini"), "-o", str(tmp_path / "g.cria"),
            "--quant", "q8")
    a = cli_text("-m", out, "--greedy", "-n", "30", "-p", "A wise man")
    b = cli_text("-m", str(tmp_path / "g.cria"), "--greedy", "-n", "30", "-p", "A wise man")
    assert a == b and a


STRUCTS = {
    "cria_model_info": _lib.ModelInfoStruct,
    "cria_session_options": _lib.SessionOptions,
    "cria_message": _lib.Message,
    "cria_generate_params": _lib.GenerateParams,
    "cria_generate_result": _lib.GenerateResultStruct,
    "cria_convert_progress": _lib.ConvertProgressStruct,
    "cria_convert_options": _lib.ConvertOptions,
}


@pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler")
def test_structures_match_the_header(tmp_path):
    lines = ["#include <stdio.h>", "#include <stddef.h>", "#include <cria/cria.h>", "int main(void) {"]
    for cname, cls in STRUCTS.items():
        lines.append(f'printf("{cname} size %zu\\n", sizeof({cname}));')
        for field, _ in cls._fields_:
            lines.append(f'printf("{cname}.{field} %zu\\n", offsetof({cname}, {field}));')
    lines += ["return 0;", "}"]
    src = tmp_path / "abi.c"
    src.write_text("\n".join(lines))
    exe = tmp_path / "abi"
    subprocess.run(["cc", "-I", str(ROOT / "runtime" / "include"), str(src), "-o", str(exe)], check=True)
    got = dict(l.rsplit(" ", 1) for l in subprocess.run([str(exe)], capture_output=True, text=True,
                                                         check=True).stdout.splitlines())
    for cname, cls in STRUCTS.items():
        assert int(got[f"{cname} size"]) == ctypes.sizeof(cls), cname
        for field, _ in cls._fields_:
            assert int(got[f"{cname}.{field}"]) == getattr(cls, field).offset, f"{cname}.{field}"
