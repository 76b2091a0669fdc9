#!/usr/bin/env python3
"""End-to-end tests of the `cria` command line on good and bad input.

    /usr/bin/python3 tests/cli/test_cli.py BUILD/bin/cria WORKDIR

Every bad input must give exit status 1 (never a signal or a sanitizer
report), exactly one line on stderr that starts with "cria: " and names the
file at fault, and - for convert - no output file (or temporary file) left
behind.
"""
import json
import os
import shutil
import struct
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CRIA = os.path.abspath(sys.argv[1])
WORK = os.path.abspath(sys.argv[2])
results = []


def run(args, timeout=300, stdin=None, env=None):
    p = subprocess.run([CRIA] + args, capture_output=True, timeout=timeout, input=stdin,
                       env=None if env is None else {**os.environ, **env})
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def case(name):
    def wrap(fn):
        try:
            fn()
            results.append((name, None))
        except AssertionError as e:
            results.append((name, str(e) or "assertion failed"))
        except Exception as e:  # noqa: BLE001 - report, keep going
            results.append((name, f"{type(e).__name__}: {e}"))
        return fn
    return wrap


def expect_error(args, must_name, contains=None, output=None, env=None):
    rc, out, err = run(args, env=env)
    lines = [l for l in err.splitlines() if l.strip()]
    assert rc == 1, f"exit status {rc}, stderr: {err[-2000:]}"
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}: {err[-2000:]}"
    assert lines[0].startswith("cria: "), f"stderr does not start with 'cria: ': {lines[0]}"
    assert must_name in lines[0], f"error does not name {must_name!r}: {lines[0]}"
    if contains:
        assert contains in lines[0], f"error does not say {contains!r}: {lines[0]}"
    if output:
        d = os.path.dirname(output)
        left = [f for f in os.listdir(d) if f.startswith(os.path.basename(output))]
        assert not left, f"left behind: {left}"
    return lines[0]


def write_safetensors(path, header, data=b""):
    h = json.dumps(header).encode() if not isinstance(header, bytes) else header
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + data)


def checkpoint(preset):
    d = os.path.join(WORK, preset)
    if not os.path.exists(os.path.join(d, "config.json")):
        subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "scripts", "gen_checkpoint.py"), "--preset", preset,
                        "--out", d], check=True, stdout=subprocess.DEVNULL)
    return d


def copy_ckpt(src, name):
    d = os.path.join(WORK, name)
    shutil.rmtree(d, ignore_errors=True)
    shutil.copytree(src, d)
    return d


os.makedirs(WORK, exist_ok=True)
LLAMA = checkpoint("ref-llama31-scaled")
FALCON = checkpoint("ref-falcon-7b")
OUT = os.path.join(WORK, "out.cria")
GOOD = os.path.join(WORK, "good.cria")
rc, _, err = run(["convert", LLAMA, "-o", GOOD, "--quant", "q8"])
assert rc == 0, err
FALCON_CRIA = os.path.join(WORK, "falcon.cria")
rc, _, err = run(["convert", FALCON, "-o", FALCON_CRIA, "--quant", "f16"])
assert rc == 0, err


# ---- convert: sources -------------------------------------------------------

@case("convert: missing source")
def _():
    expect_error(["convert", os.path.join(WORK, "nope"), "-o", OUT], "nope", output=OUT)


@case("convert: directory without a checkpoint")
def _():
    d = os.path.join(WORK, "empty")
    os.makedirs(d, exist_ok=True)
    expect_error(["convert", d, "-o", OUT], d, output=OUT)


def bad_st(name, header, data, contains):
    d = copy_ckpt(LLAMA, name)
    st = os.path.join(d, "model.safetensors")
    if header is None:
        with open(st, "wb") as f:
            f.write(data)
    else:
        write_safetensors(st, header, data)
    expect_error(["convert", d, "-o", OUT], "model.safetensors", contains, output=OUT)


@case("safetensors: header length past EOF")
def _():
    bad_st("st_len", None, struct.pack("<Q", 1 << 40) + b"{}", "past the end")


@case("safetensors: malformed header JSON")
def _():
    bad_st("st_json", b'{"a": {"dtype": "F32", ', b"", "not valid JSON")


@case("safetensors: offsets out of range")
def _():
    bad_st("st_range", {"x": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, b"\0" * 8, "out of range")


@case("safetensors: overlapping tensors")
def _():
    bad_st("st_overlap", {"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
                          "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}}, b"\0" * 24, "overlap")


@case("safetensors: unknown dtype")
def _():
    bad_st("st_dtype", {"a": {"dtype": "F7", "shape": [4], "data_offsets": [0, 16]}}, b"\0" * 16, "unknown dtype")


def bad_config(name, edit, contains):
    d = copy_ckpt(LLAMA, name)
    p = os.path.join(d, "config.json")
    cfg = json.load(open(p))
    edit(cfg)
    json.dump(cfg, open(p, "w"))
    expect_error(["convert", d, "-o", OUT], "config.json", contains, output=OUT)


@case("config: unknown architecture")
def _():
    bad_config("cfg_arch", lambda c: c.update(architectures=["GPT2LMHeadModel"], model_type="gpt2"), "unsupported")


@case("config: missing key")
def _():
    bad_config("cfg_key", lambda c: c.pop("hidden_size"), "missing key hidden_size")


@case("convert: shape disagrees with the config")
def _():
    d = copy_ckpt(LLAMA, "cfg_shape")
    p = os.path.join(d, "config.json")
    cfg = json.load(open(p))
    cfg["intermediate_size"] *= 2
    json.dump(cfg, open(p, "w"))
    expect_error(["convert", d, "-o", OUT], d, "config implies", output=OUT)


@case("convert: missing tensor")
def _():
    d = copy_ckpt(LLAMA, "no_tensor")
    st = os.path.join(d, "model.safetensors")
    raw = open(st, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    header.pop("model.layers.1.mlp.down_proj.weight")
    write_safetensors(st, header, raw[8 + n:])
    expect_error(["convert", d, "-o", OUT], d, "missing tensor model.layers.1.mlp.down_proj.weight", output=OUT)


@case("convert: an existing output survives a failed conversion")
def _():
    shutil.copy(GOOD, OUT)
    before = open(OUT, "rb").read()
    rc, _, _ = run(["convert", os.path.join(WORK, "nope"), "-o", OUT])
    assert rc == 1
    assert open(OUT, "rb").read() == before
    os.remove(OUT)


@case("convert: a sharded checkpoint gives the same tensors")
def _():
    d = os.path.join(WORK, "sharded")
    if not os.path.exists(os.path.join(d, "model.safetensors.index.json")):
        subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "scripts", "gen_checkpoint.py"), "--preset",
                        "ref-llama31-scaled", "--shards", "3", "--out", d], check=True, stdout=subprocess.DEVNULL)
    shards = [f for f in os.listdir(d) if f.endswith(".safetensors")]
    assert len(shards) == 3, shards
    a, b = os.path.join(WORK, "one.cria"), os.path.join(WORK, "three.cria")
    for src, out in ((LLAMA, a), (d, b)):
        rc, _, err = run(["convert", src, "-o", out, "--quant", "q4"])
        assert rc == 0, err
    ta = {t["name"]: t["xxh3"] for t in json.loads(run(["inspect", a, "--json"])[1])["tensors"]}
    tb = {t["name"]: t["xxh3"] for t in json.loads(run(["inspect", b, "--json"])[1])["tensors"]}
    assert ta == tb


@case("convert: a shard named by the index is missing")
def _():
    d = copy_ckpt(os.path.join(WORK, "sharded"), "sharded_missing")
    victim = sorted(f for f in os.listdir(d) if f.endswith(".safetensors"))[1]
    os.remove(os.path.join(d, victim))
    expect_error(["convert", d, "-o", OUT], victim, output=OUT)


@case("convert: bad options")
def _():
    rc, _, err = run(["convert", LLAMA, "-o", OUT, "--quant", "q3"])
    assert rc == 1 and "unknown quantization" in err, err
    rc, _, err = run(["convert", LLAMA, "-o", OUT, "--group", "64"])
    assert rc == 2 and "--group" in err, err


# ---- .cria files ------------------------------------------------------------

def mutate(name, fn):
    p = os.path.join(WORK, name)
    b = bytearray(open(GOOD, "rb").read())
    b = fn(b)
    open(p, "wb").write(bytes(b))
    return p


@case("cria: truncated file")
def _():
    p = mutate("trunc.cria", lambda b: b[: len(b) // 2])
    expect_error(["inspect", p], p, "truncated")


@case("cria: wrong identifier")
def _():
    def f(b):
        b[0:4] = b"XXXX"
        return b
    p = mutate("magic.cria", f)
    expect_error(["inspect", p], p, "not a cria model file")


@case("cria: newer major version")
def _():
    def f(b):
        b[4:6] = struct.pack("<H", 99)
        return b
    p = mutate("major.cria", f)
    expect_error(["inspect", p], p, "newer")


@case("one version everywhere: --version, the library and the converter match CMakeLists.txt")
def _():
    import re
    want = re.search(r"project\(cria VERSION ([0-9.]+)", open(os.path.join(ROOT, "CMakeLists.txt")).read()).group(1)
    rc, out, err = run(["--version"])
    assert rc == 0 and out.strip() == f"cria {want}", (out, err)
    rc, out, err = run(["inspect", GOOD, "--json"])
    assert rc == 0, err
    assert json.loads(out)["provenance"]["converter"] == f"cria-convert {want}", out[:800]


@case("cria: flipped byte in tensor data is caught by --verify")
def _():
    pre = open(GOOD, "rb").read(64)
    data_offset, data_size = struct.unpack("<QQ", pre[24:40])

    def f(b):
        b[data_offset + data_size // 2] ^= 0x01
        return b
    p = mutate("flip.cria", f)
    rc, _, err = run(["inspect", p])
    assert rc == 0, err
    expect_error(["inspect", p, "--verify"], p, "checksum mismatch")


@case("cria: inspect --verify and --json on a good file")
def _():
    rc, out, err = run(["inspect", GOOD, "--verify", "--json"])
    assert rc == 0, err
    j = json.loads(out)
    assert j["checksums"] == "ok" and j["config"]["arch"] == "llama", out[:500]


def fb_field(buf, table, index):
    """Absolute offset of field `index` of the FlatBuffers table at `table`,
    or None when absent."""
    vt = table - struct.unpack_from("<i", buf, table)[0]
    vt_len = struct.unpack_from("<H", buf, vt)[0]
    if 4 + 2 * index >= vt_len:
        return None
    off = struct.unpack_from("<H", buf, vt + 4 + 2 * index)[0]
    return table + off if off else None


def patched_header(name, edit):
    """A copy of GOOD whose FlatBuffer header `edit(bytes, model_table)`
    changed in place, with the header checksum recomputed so the edit itself
    is what the reader meets."""
    import xxhash
    b = bytearray(open(GOOD, "rb").read())
    hdr_size = struct.unpack_from("<Q", b, 16)[0]
    base = 64
    edit(b, base + struct.unpack_from("<I", b, base)[0])
    struct.pack_into("<Q", b, 48, xxhash.xxh3_64_intdigest(bytes(b[base:base + hdr_size])))
    p = os.path.join(WORK, name)
    open(p, "wb").write(bytes(b))
    return p


@case("cria: architecture this build does not know")
def _():
    def edit(b, model):
        cfg_field = fb_field(b, model, 2)          # Model.config
        config = cfg_field + struct.unpack_from("<I", b, cfg_field)[0]
        arch = fb_field(b, config, 0)               # Config.arch
        assert b[arch] == 0, "expected the llama value"
        b[arch] = 9
    p = patched_header("arch.cria", edit)
    expect_error(["inspect", p], p, "unknown architecture")
    expect_error(["run", "-m", p, "-p", "x"], p, "unknown architecture")


@case("cria: newer major version in the header (not only the preamble)")
def _():
    def edit(b, model):
        major = fb_field(b, model, 0)               # Model.format_major
        assert major is not None and struct.unpack_from("<H", b, major)[0] == 1, "expected format_major 1 stored"
        struct.pack_into("<H", b, major, 7)
    p = patched_header("hdr-major.cria", edit)
    expect_error(["inspect", p], p, "header format version 7.0 is newer")


# ---- run / chat / tokenize ------------------------------------------------------

@case("run: generates and reports speed")
def _():
    rc, out, err = run(["run", "-m", GOOD, "-p", "Hello", "-n", "8", "--greedy"])
    assert rc == 0, err
    assert "tok/s" in err, err


@case("run: an unknown CRIA_ISA is an error that lists the valid names")
def _():
    line = expect_error(["run", "-m", GOOD, "-p", "Hello", "-n", "2"], "CRIA_ISA=frob", env={"CRIA_ISA": "frob"})
    assert "valid here: scalar" in line, line
    rc, out, err = run(["run", "-m", GOOD, "-p", "Hello", "-n", "2", "--greedy"], env={"CRIA_ISA": "scalar"})
    assert rc == 0, err


@case("run: --weights copy and map print where the weights are read from, with the same text")
def _():
    texts = {}
    for how, row in (("copy", "weights     copied into memory"), ("map", "weights     read in place")):
        rc, out, err = run(["run", "-m", GOOD, "-p", "Hello", "-n", "12", "--greedy", "--quiet", "-v", "--weights", how])
        assert rc == 0, err
        assert row in err, err
        texts[how] = out
    assert texts["copy"] == texts["map"] and texts["copy"].strip(), texts
    rc, out, err = run(["run", "-m", GOOD, "-p", "Hello", "--weights", "huge"])
    assert rc != 0 and "auto, map or copy" in err, (rc, err)


@case("run: same seed, same output")
def _():
    a = run(["run", "-m", GOOD, "-p", "Hello", "-n", "12", "--temperature", "0.9", "--seed", "7", "--quiet"])
    b = run(["run", "-m", GOOD, "-p", "Hello", "-n", "12", "--temperature", "0.9", "--seed", "7", "--quiet"])
    assert a[0] == 0 and a[1] == b[1], (a, b)


@case("run: prompt longer than the context")
def _():
    long = "word " * 400
    expect_error(["run", "-m", GOOD, "-p", long, "--ctx", "64"], "context")
    rc, out, err = run(["run", "-m", GOOD, "-p", long, "--ctx", "64", "--truncate", "-n", "4"])
    assert rc == 0, err


@case("run: --max-new-tokens 0")
def _():
    rc, _, err = run(["run", "-m", GOOD, "-p", "x", "--max-new-tokens", "0"])
    assert rc == 2 and "--max-new-tokens" in err, err


@case("run: invalid UTF-8 in the prompt")
def _():
    p = os.path.join(WORK, "bad_utf8.txt")
    open(p, "wb").write(b"abc \xff\xfe \xc3 \xe2\x82 end")
    rc, out, err = run(["run", "-m", GOOD, "--file", p, "-n", "4", "--greedy"])
    assert rc == 0, err


@case("run: --chat on a model without a chat template")
def _():
    expect_error(["run", "-m", FALCON_CRIA, "-p", "hi", "--chat"], "chat template")


@case("run: generation reaching the context length stops and says why")
def _():
    rc, out, err = run(["run", "-m", GOOD, "-p", "Hello there", "--ctx", "24", "-n", "-1", "--greedy",
                        "--eos-id", "0"])
    assert rc == 0, err
    assert "context" in err and "full" in err, err


@case("run: --threads 0 and negative")
def _():
    for t in ("0", "-3"):
        rc, _, err = run(["run", "-m", GOOD, "-p", "x", "--threads", t])
        assert rc == 2 and "--threads" in err, err


@case("run: missing model file")
def _():
    expect_error(["run", "-m", os.path.join(WORK, "none.cria"), "-p", "x"], "none.cria")


@case("run: num_return_sequences decodes several continuations")
def _():
    rc, out, err = run(["run", "-m", FALCON_CRIA, "-p", "The", "-n", "6", "--num-return-sequences", "3",
                        "--do-sample", "--top-k", "20", "--seed", "3"])
    assert rc == 0, err
    assert out.count("--- sequence") == 3, out


@case("run: a batch of prompts decodes together and matches single runs")
def _():
    p = os.path.join(WORK, "batch.txt")
    prompts = ["The first prompt", "A second, longer prompt about something else", "Three"]
    open(p, "w").write("\n".join(prompts) + "\n")
    rc, out, err = run(["run", "-m", GOOD, "--prompts-file", p, "-n", "10", "--greedy"])
    assert rc == 0, err
    parts = out.split("--- sequence ")[1:]
    assert len(parts) == 3, out
    for i, pr in enumerate(prompts):
        rc, single, err = run(["run", "-m", GOOD, "-p", pr, "-n", "10", "--greedy", "--quiet"])
        assert rc == 0, err
        got = parts[i].split("---\n", 1)[1]
        assert got.rstrip("\n") == single.rstrip("\n"), (i, got, single)


@case("run: --print-prompt shows the Llama 3 template")
def _():
    rc, out, err = run(["run", "-m", GOOD, "-p", "  Hi  ", "--chat", "--system", "Be brief.", "--print-prompt"])
    assert rc == 0, err
    want = ("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")
    assert out == want, repr(out)


@case("Falcon instruct format: --chat-template falcon, stops at \\nUser:")
def _():
    p = os.path.join(WORK, "falcon-chat.cria")
    rc, _, err = run(["convert", FALCON, "-o", p, "--quant", "q8", "--chat-template", "falcon"])
    assert rc == 0, err
    rc, out, err = run(["run", "-m", p, "-p", "Hi", "--chat", "--system", "Be kind.", "--print-prompt"])
    assert rc == 0, err
    assert out == "System: Be kind.\nUser: Hi\nFalcon:", repr(out)
    rc, out, err = run(["run", "-m", p, "-p", "Hi", "--chat", "-n", "8", "--greedy"])
    assert rc == 0 and "\nUser:" not in out, (out, err)
    rc, _, err = run(["convert", FALCON, "-o", p, "--chat-template", "vicuna"])
    assert rc == 1 and "unknown chat template" in err, err


@case("tokenize: lines, bos and special tokens")
def _():
    rc, out, err = run(["tokenize", "-m", GOOD, "--text", "a b\n<|eot_id|>", "--lines"])
    assert rc == 0, err
    lines = out.strip("\n").split("\n")
    assert len(lines) == 2, out
    rc, out2, _ = run(["tokenize", "-m", GOOD, "--text", "<|eot_id|>", "--no-special"])
    assert len(out2.split()) > 1, out2
    rc, out3, _ = run(["tokenize", "-m", GOOD, "--text", "a", "--bos"])
    assert len(out3.split()) == 2, out3


@case("perplexity: prints a final perplexity line")
def _():
    p = os.path.join(WORK, "ppl.txt")
    open(p, "w").write("The quick brown fox jumps over the lazy dog. " * 40)
    for extra in ([], ["--llama-cpp-compat"]):
        rc, out, err = run(["perplexity", "-m", GOOD, "--file", p, "--ctx", "64"] + extra)
        assert rc == 0, err
        last = out.strip().splitlines()[-1]
        assert last.startswith("perplexity: ") and float(last.split()[1]) > 1, out


@case("chat: two turns from stdin")
def _():
    rc, out, err = run(["chat", "-m", GOOD, "--max-new-tokens", "4", "--greedy"], stdin=b"hello\nagain\n")
    assert rc == 0, err


@case("the C API example streams a completion")
def _():
    exe = os.path.join(os.path.dirname(CRIA), "c-api-stream")
    p = subprocess.run([exe, GOOD, "Hello", "--chat"], capture_output=True, timeout=300)
    assert p.returncode == 0, p.stderr.decode()
    assert b"generated" in p.stderr, p.stderr
    p = subprocess.run([exe, os.path.join(WORK, "none.cria"), "x"], capture_output=True, timeout=60)
    assert p.returncode == 1 and b"none.cria" in p.stderr, p.stderr


@case("bench: prefill and decode after --depth tokens of context")
def _():
    # The measured call must reuse exactly the context's cache rows (bench
    # checks it and fails otherwise), so a depth that were ignored or
    # recomputed would not pass.
    rc, out, err = run(["bench", "-m", GOOD, "-p", "8", "-n", "4", "-d", "40", "-r", "2", "-t", "1", "--json"])
    assert rc == 0, err
    j = json.loads(out)
    assert j["depth"] == 40 and j["depth_prefill_tok_s"] > 0 and j["decode_tok_s"] > 0, j
    rc, out, err = run(["bench", "-m", GOOD, "-p", "8", "-n", "4", "-d", "40", "-r", "1", "-t", "1"])
    assert rc == 0 and "pp8 @ d40" in out and "tg4 @ d40" in out, out + err
    ctx = json.loads(run(["inspect", GOOD, "--json"])[1])["config"]["max_position_embeddings"]
    expect_error(["bench", "-m", GOOD, "-p", "8", "-n", "4", "-d", str(ctx)], "good.cria", "past the model's context")


@case("unknown command and option")
def _():
    rc, _, err = run(["frobnicate"])
    assert rc == 2, err
    rc, _, err = run(["run", "--frob"])
    assert rc == 2 and "--frob" in err, err


failed = [(n, e) for n, e in results if e]
for n, e in results:
    print(("FAIL " if e else "ok   ") + n + (f": {e}" if e else ""))
print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
sys.exit(1 if failed else 0)
