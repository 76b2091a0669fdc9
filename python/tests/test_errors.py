"""Bad input raises a typed exception carrying the C library's message; the
interpreter survives all of it."""
import os
import subprocess
import sys

import pytest

import cria

from conftest import ROOT


def test_missing_file(tmp_path):
    path = tmp_path / "nope.cria"
    with pytest.raises(cria.ModelNotFoundError) as e:
        cria.Model(path)
    assert isinstance(e.value, FileNotFoundError) and isinstance(e.value, cria.CriaError)
    assert str(path) in str(e.value)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "flipped-header"])
def test_corrupt_file(llama, tmp_path, damage):
    data = bytearray(open(llama, "rb").read())
    if damage == "garbage":
        data = bytearray(b"not a model at all" * 100)
    elif damage == "truncated":
        data = data[: len(data) // 2]
    else:
        data[100] ^= 0xFF  # inside the header: its checksum no longer matches
    path = tmp_path / f"{damage}.cria"
    path.write_bytes(bytes(data))
    with pytest.raises(cria.CriaError) as e:
        cria.Model(path)
    assert isinstance(e.value, (cria.CorruptModelError, cria.InvalidArgumentError, cria.UnsupportedError))
    assert str(path) in str(e.value)
    assert "\n" not in str(e.value)


def test_wrong_types(llama):
    with pytest.raises(TypeError):
        cria.Model(123)
    with pytest.raises(TypeError):
        cria.Model(llama, threads="2")
    with cria.Model(llama) as m:
        with pytest.raises(TypeError):
            m.stream(42)
        with pytest.raises(TypeError):
            m.stream("x", max_new_tokens="10")
        with pytest.raises(TypeError):
            m.stream("x", temperature="hot")
        with pytest.raises(TypeError):
            m.stream(messages="hello")
        with pytest.raises(TypeError):
            m.stream(messages=[{"role": "user"}])
        with pytest.raises(TypeError):
            m.detokenize("abc")
        with pytest.raises(TypeError):
            m.stream("x", bogus=1)  # an unknown argument


def test_bad_values_carry_the_c_message(llama):
    with cria.Model(llama) as m:
        # Checked by the C library when generation starts.
        with pytest.raises(cria.InvalidArgumentError, match="sampling settings out of range"):
            m.generate("x", temperature=-1.0)
        with pytest.raises(ValueError, match="top_p"):
            m.generate("x", top_p=1.5)
        with pytest.raises(cria.OutOfRangeError, match="context holds 256"):
            m.generate("word " * 400)
        with pytest.raises(ValueError, match="max_length 2 leaves no room"):
            m.generate("Once upon a time", max_length=2)
        with pytest.raises(ValueError):
            m.stream("x", max_new_tokens=0)
        with pytest.raises(ValueError, match="exactly one"):
            m.stream()
        with pytest.raises(ValueError, match="role"):
            m.stream(messages=[{"role": "robot", "content": "x"}])
        with pytest.raises(ValueError, match="NUL"):
            m.stream("a\0b")
        with pytest.raises(ValueError, match="vocabulary"):
            m.detokenize([10**6])
        with pytest.raises(ValueError, match="unknown backend 'gpu'.*this build has: auto, cpu"):
            cria.Model(llama, backend="gpu")
        # The model still works after every one of these.
        assert m.generate("Once", temperature=0, max_new_tokens=3)


def test_base_model_has_no_chat(falcon):
    with cria.Model(falcon) as m:
        with pytest.raises(cria.UnsupportedError, match="no chat template"):
            m.generate(messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(ValueError, match="system_prompt"):
        list(cria.stream(falcon, input={"prompt": "x", "system_prompt": "y"}))


def test_replicate_unknown_input(llama):
    with pytest.raises(ValueError, match="'bogus' is not supported"):
        cria.stream(llama, input={"prompt": "x", "bogus": 1.0})
    with pytest.raises(cria.UnsupportedError, match="presence_penalty"):
        cria.stream(llama, input={"prompt": "x", "presence_penalty": 1.0})
    with pytest.raises(ValueError, match="prompt"):
        cria.stream(llama, input={})
    with pytest.raises(TypeError):
        cria.stream(llama, input="x")
    with pytest.raises(TypeError):
        cria.stream(llama, input={"prompt": 5})


def test_pipeline_errors(llama):
    with pytest.raises(ValueError, match="unknown task"):
        cria.pipeline("summarization", model=llama)
    pipe = cria.pipeline("text-generation", model=llama)
    with pytest.raises(TypeError, match="unexpected keyword argument 'num_beams'"):
        pipe("x", num_beams=4)
    with pytest.raises(ValueError, match="do_sample=True"):
        pipe("x", do_sample=False, num_return_sequences=2)
    with pytest.raises(TypeError):
        pipe(123)


def test_convert_errors(tmp_path):
    out = tmp_path / "out.cria"
    with pytest.raises(cria.CriaError) as e:
        cria.convert(tmp_path / "missing-dir", out)
    assert "missing-dir" in str(e.value)
    assert not os.listdir(tmp_path)
    with pytest.raises(ValueError, match="quant"):
        cria.convert(tmp_path, out, quant="q3")
    with pytest.raises(TypeError):
        cria.convert(1, out)


def test_convert_stopped_by_progress_callback(tmp_path):
    out = tmp_path / "out.cria"

    class Stop(Exception):
        pass

    def progress(p):
        if p.index >= 3:
            raise Stop()

    with pytest.raises(Stop):
        cria.convert(ROOT / "examples" / "models" / "llama-mini", out, progress=progress)
    assert not os.listdir(tmp_path)  # nothing half-written


def test_library_not_found():
    code = "import cria\ntry:\n    cria.Model('x.cria')\nexcept cria.LibraryNotFoundError as e:\n    print('ok', e)\n"
    env = dict(os.environ, CRIA_LIBRARY="/nonexistent/libcria.so", PYTHONPATH=str(ROOT / "python"))
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode == 0 and p.stdout.startswith("ok") and "/nonexistent/libcria.so" in p.stdout, p.stderr


def test_nothing_crashes_the_interpreter(llama, tmp_path):
    # Misuse in a child interpreter: every call must raise, none may kill it.
    code = f"""
import cria, gc
m = cria.Model({llama!r})
s = m.stream("Once", max_new_tokens=50, temperature=0)
next(s)
m.close()
for bad in (lambda: m.generate("x"), lambda: m.tokenize("x"), lambda: cria.Model(b"bytes")):
    try:
        bad()
    except (cria.CriaError, TypeError, ValueError):
        pass
rest = "".join(s)  # the stream started before close() still finishes
del s, m
gc.collect()
m = cria.Model({llama!r})
abandoned = m.stream("Once", max_new_tokens=-1, temperature=0, eos_token_id=[m.info.bos_id])
next(abandoned)  # kept but never finished: exit must not hang or crash
print("survived")
"""
    env = dict(os.environ, PYTHONPATH=str(ROOT / "python"))
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode == 0 and p.stdout.strip() == "survived", p.stderr


def test_backend_choice(llama, models, tmp_path):
    with cria.Model(llama, backend="cpu") as m:
        assert "linear      cpu (16 q4, 1 q8)" in m.placement
        cpu_text = m.generate("Once upon a time", temperature=0, max_new_tokens=24)
    # q4 weights (the head is q8): xnnpack has no int4 or int8 operator, so
    # they stay on cpu.
    with cria.Model(llama, backend="xnnpack") as m:
        assert "linear      cpu (16 q4, 1 q8)" in m.placement
    # f32 weights go to xnnpack when asked, with the same greedy text as cpu.
    f32 = cria.convert(ROOT / "examples" / "models" / "llama-mini", tmp_path / "llama-f32.cria", quant="f32")
    texts = {}
    for backend in ("cpu", "xnnpack"):
        with cria.Model(f32, backend=backend) as m:
            assert f"linear      {backend} (17 f32)" in m.placement
            texts[backend] = m.generate("Once upon a time", temperature=0, max_new_tokens=24)
    assert texts["cpu"] == texts["xnnpack"]
    assert cpu_text  # the q4 run produced text too


def test_weights_choice(llama):
    # weights= reaches the library: the placement's weights row says where the
    # CPU reads them from, and both give the same greedy text.
    texts = {}
    for how, row in (("copy", "weights     copied into memory"), ("map", "weights     read in place")):
        with cria.Model(llama, weights=how) as m:
            assert row in m.placement, m.placement
            texts[how] = m.generate("Once upon a time", temperature=0, max_new_tokens=16)
    assert texts["copy"] == texts["map"] and texts["copy"]
    with pytest.raises(ValueError, match="auto, map or copy"):
        cria.Model(llama, weights="huge")


def test_gpu_layers_need_a_device_backend(llama):
    with pytest.raises(ValueError, match="use them with backend vulkan"):
        cria.Model(llama, backend="cpu", gpu_layers=1)
    with pytest.raises(ValueError, match="gpu_layers"):
        cria.Model(llama, backend="vulkan", gpu_layers=-3)
